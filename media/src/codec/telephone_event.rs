//! RFC 4733 telephone-events (DTMF over RTP): sending with end-packet redundancy and
//! receiving with de-duplication by event timestamp.

use crate::rtp::{OutgoingStream, PayloadType, RtpHeader};

/// A DTMF key: `0`–`9`, `*`, `#`, `A`–`D` (RFC 4733 §3.2 event codes 0–15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(u8);

impl Digit {
    /// The digit for an RFC 4733 event code 0–15.
    pub fn from_code(code: u8) -> Option<Self> {
        (code < 16).then_some(Digit(code))
    }

    /// The digit for a key character (case-insensitive for A–D).
    pub fn from_char(c: char) -> Option<Self> {
        let code = match c.to_ascii_uppercase() {
            '0'..='9' => c as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => c.to_ascii_uppercase() as u8 - b'A' + 12,
            _ => return None,
        };
        Some(Digit(code))
    }

    /// The RFC 4733 event code.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The key character.
    pub fn to_char(self) -> char {
        match self.0 {
            0..=9 => (b'0' + self.0) as char,
            10 => '*',
            11 => '#',
            c => (b'A' + c - 12) as char,
        }
    }
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code.
    pub event: u8,
    /// E bit: the last packets of the event.
    pub end: bool,
    /// Volume in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far in timestamp units.
    pub duration: u16,
}

/// Errors from telephone-event payloads (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelephoneEventError {
    /// Payload shorter than 4 octets.
    #[error("telephone-event payload too short")]
    TooShort,
}

impl EventPayload {
    /// Parses the first 4 octets (RFC 4733 §2.3; further octets would be redundancy blocks).
    pub fn parse(payload: &[u8]) -> Result<Self, TelephoneEventError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(TelephoneEventError::TooShort);
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4 wire octets.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            ((self.end as u8) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Sends one digit at a time as RFC 4733 events, one packet per 20 ms tick.
#[derive(Debug, Default)]
pub struct DtmfSender {
    current: Option<Sending>,
}

#[derive(Debug)]
struct Sending {
    digit: Digit,
    start_ts: u32,
    total: u32,
    elapsed: u32,
    ends_sent: u8,
}

/// End packets sent per event (RFC 4733 §2.5.1.4: the final packet is retransmitted).
pub const END_REPETITIONS: u8 = 3;

impl DtmfSender {
    /// Starts sending `digit` for `duration` samples (e.g. 800 = 100 ms at 8 kHz).
    /// Returns false if an event is still being sent.
    pub fn start(&mut self, digit: Digit, duration: u32) -> bool {
        if self.current.is_some() {
            return false;
        }
        self.current = Some(Sending {
            digit,
            start_ts: 0,
            total: duration.clamp(160, u16::MAX as u32),
            elapsed: 0,
            ends_sent: 0,
        });
        true
    }

    /// Whether an event is in progress (the leg sends no audio meanwhile).
    pub fn is_busy(&self) -> bool {
        self.current.is_some()
    }

    /// The packet for this tick, if an event is in progress. `samples` is the tick's length.
    /// Every packet of the event carries the event's start timestamp (RFC 4733 §2.3.1) and
    /// the stream's timestamp moves on underneath so audio resumes continuously.
    pub fn tick(
        &mut self,
        stream: &mut OutgoingStream,
        payload_type: PayloadType,
        samples: u32,
    ) -> Option<(RtpHeader, [u8; 4])> {
        let s = self.current.as_mut()?;
        let first = s.elapsed == 0 && s.ends_sent == 0;
        if first {
            s.start_ts = stream.timestamp();
        }
        let end = s.elapsed + samples >= s.total;
        if !end || s.ends_sent == 0 {
            s.elapsed = (s.elapsed + samples).min(s.total);
            stream.skip(samples);
        }
        let payload = EventPayload {
            event: s.digit.code(),
            end,
            volume: 10,
            duration: s.elapsed as u16,
        };
        if end {
            s.ends_sent += 1;
        }
        let header = stream.event_packet(payload_type, first, s.start_ts);
        if s.ends_sent >= END_REPETITIONS {
            self.current = None;
        }
        Some((header, payload.to_bytes()))
    }
}

/// What the receiver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A key went down (reported on the first packet seen of a new event).
    Pressed(Digit),
    /// The key came up after `duration` timestamp units.
    Released(Digit, u32),
}

/// Turns received RFC 4733 packets into key presses, each reported exactly once despite
/// retransmitted updates and end packets, reordering and a lost start packet.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    current: Option<(u32, Digit, bool)>,
}

impl DtmfReceiver {
    /// Feeds one telephone-event packet; returns up to two events (press and release when
    /// only the end packets survived).
    pub fn on_packet(
        &mut self,
        header: &RtpHeader,
        payload: &[u8],
    ) -> Result<Vec<DtmfEvent>, TelephoneEventError> {
        let p = EventPayload::parse(payload)?;
        let mut out = Vec::new();
        // Codes above 15 are other events (RFC 4733 §3.2 tones): ignored.
        let Some(digit) = Digit::from_code(p.event) else {
            return Ok(out);
        };
        let ts = header.timestamp;
        match self.current {
            Some((cur, _, _)) if cur == ts => {}
            // An older event arriving late must not restart anything.
            Some((cur, _, _)) if (ts.wrapping_sub(cur) as i32) < 0 => return Ok(out),
            _ => {
                self.current = Some((ts, digit, false));
                out.push(DtmfEvent::Pressed(digit));
            }
        }
        if let Some((_, d, ended)) = self.current.as_mut()
            && p.end
            && !*ended
        {
            *ended = true;
            out.push(DtmfEvent::Released(*d, p.duration as u32));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::Ssrc;

    #[test]
    fn digits_map_to_rfc4733_codes() {
        let keys = "0123456789*#ABCD";
        for (code, c) in keys.chars().enumerate() {
            let d = Digit::from_char(c).unwrap();
            assert_eq!(d.code() as usize, code);
            assert_eq!(d.to_char(), c);
        }
        assert_eq!(Digit::from_char('b'), Digit::from_code(13));
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(Digit::from_code(16), None);
    }

    #[test]
    fn payload_round_trips_and_short_is_an_error() {
        let p = EventPayload {
            event: 11,
            end: true,
            volume: 10,
            duration: 1280,
        };
        assert_eq!(p.to_bytes(), [11, 0x8A, 0x05, 0x00]);
        assert_eq!(EventPayload::parse(&p.to_bytes()), Ok(p));
        assert_eq!(
            EventPayload::parse(&[1, 2, 3]),
            Err(TelephoneEventError::TooShort)
        );
    }

    fn send(digit: char, duration: u32) -> (OutgoingStream, Vec<(RtpHeader, [u8; 4])>) {
        let mut stream = OutgoingStream::new(Ssrc(1), 100, 8000);
        let mut tx = DtmfSender::default();
        assert!(tx.start(Digit::from_char(digit).unwrap(), duration));
        assert!(!tx.start(Digit::from_char('1').unwrap(), duration));
        let pt = PayloadType::new(101).unwrap();
        let mut packets = Vec::new();
        while let Some(p) = tx.tick(&mut stream, pt, 160) {
            packets.push(p);
        }
        (stream, packets)
    }

    #[test]
    fn sender_marks_start_repeats_end_three_times_and_keeps_time_continuous() {
        let (mut stream, packets) = send('5', 800);
        // 800 samples = 5 ticks; the 5th is the first end packet, then two repeats.
        assert_eq!(packets.len(), 7);
        assert!(packets[0].0.marker);
        assert!(packets[1..].iter().all(|p| !p.0.marker));
        assert!(packets.iter().all(|p| p.0.timestamp == 8000));
        for (i, w) in packets.windows(2).enumerate() {
            assert_eq!(w[1].0.sequence, w[0].0.sequence + 1, "packet {i}");
        }
        let parsed: Vec<_> = packets
            .iter()
            .map(|p| EventPayload::parse(&p.1).unwrap())
            .collect();
        assert_eq!(
            parsed.iter().map(|p| p.duration).collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(parsed.iter().filter(|p| p.end).count(), 3);
        // Audio after the event continues at start + duration.
        let next = stream.next_frame(PayloadType::PCMU, 160);
        assert_eq!(next.timestamp, 8000 + 800);
        assert_eq!(next.sequence, packets[6].0.sequence + 1);
    }

    #[test]
    fn receiver_reports_each_press_once() {
        let mut stream = OutgoingStream::new(Ssrc(1), 0, 0);
        let pt = PayloadType::new(101).unwrap();
        let mut tx = DtmfSender::default();
        let mut rx = DtmfReceiver::default();
        let mut events = Vec::new();
        for digit in ['1', '#'] {
            tx.start(Digit::from_char(digit).unwrap(), 480);
            let mut last = None;
            while let Some((h, p)) = tx.tick(&mut stream, pt, 160) {
                events.extend(rx.on_packet(&h, &p).unwrap());
                last = Some((h, p));
            }
            // A duplicate end arriving late is ignored.
            let (h, p) = last.unwrap();
            assert!(rx.on_packet(&h, &p).unwrap().is_empty());
            // Some audio between the key presses.
            stream.next_frame(PayloadType::PCMU, 160);
        }
        let one = Digit::from_char('1').unwrap();
        let hash = Digit::from_char('#').unwrap();
        assert_eq!(
            events,
            [
                DtmfEvent::Pressed(one),
                DtmfEvent::Released(one, 480),
                DtmfEvent::Pressed(hash),
                DtmfEvent::Released(hash, 480)
            ]
        );
    }

    #[test]
    fn receiver_survives_lost_start_and_reordering() {
        let mut rx = DtmfReceiver::default();
        let (_, a) = send('7', 480);
        let seven = Digit::from_char('7').unwrap();
        // Only the end packets arrive.
        assert_eq!(a.len(), 5);
        let got = rx.on_packet(&a[2].0, &a[2].1).unwrap();
        assert_eq!(
            got,
            [DtmfEvent::Pressed(seven), DtmfEvent::Released(seven, 480)]
        );
        assert!(rx.on_packet(&a[3].0, &a[3].1).unwrap().is_empty());
        // A reordered update of the same event changes nothing.
        assert!(rx.on_packet(&a[1].0, &a[1].1).unwrap().is_empty());
        // A next event with a later timestamp is a new press; an older one is ignored.
        let mut later = a[0].0;
        later.timestamp += 4000;
        assert_eq!(
            rx.on_packet(&later, &a[0].1).unwrap(),
            [DtmfEvent::Pressed(seven)]
        );
        assert!(rx.on_packet(&a[0].0, &a[0].1).unwrap().is_empty());
        assert!(rx.on_packet(&a[0].0, &[1]).is_err());
    }
}
