//! One outgoing RTP stream with one SSRC and continuous sequence numbers and timestamps,
//! whatever feeds it (RFC 3550 §5.1, §8: a source change upstream — IVR prompt, then hold
//! music, then the agent relayed through us — must not look like a new source to the far
//! end, or its jitter buffer and loss statistics restart and some phones mute the stream).

use super::{PayloadType, RtpHeader, Ssrc};

/// Continuity state of one outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct OutgoingStream {
    ssrc: Ssrc,
    next_seq: u16,
    next_ts: u32,
    marker_pending: bool,
    relay: Option<RelayMap>,
    packets_sent: u32,
    octets_sent: u32,
    last_ts: u32,
}

/// Offsets that map an upstream source's sequence/timestamp space onto ours.
#[derive(Debug, Clone, Copy)]
struct RelayMap {
    upstream: Ssrc,
    seq_offset: u16,
    ts_offset: u32,
}

impl OutgoingStream {
    /// A new stream. `initial_seq` and `initial_ts` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: Ssrc, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            ssrc,
            next_seq: initial_seq,
            next_ts: initial_ts,
            marker_pending: true,
            relay: None,
            packets_sent: 0,
            octets_sent: 0,
            last_ts: initial_ts,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The timestamp the next locally produced frame will carry.
    pub fn timestamp(&self) -> u32 {
        self.next_ts
    }

    /// Header for a locally produced frame (mixer output, prompt) of `samples` samples.
    pub fn next_frame(&mut self, payload_type: PayloadType, samples: u32) -> RtpHeader {
        self.relay = None;
        let h = self.header(payload_type, self.next_seq, self.next_ts);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_ts = self.next_ts.wrapping_add(samples);
        h
    }

    /// Media time passed without a packet (silence suppression, mute): the timestamp moves on
    /// (RFC 3550 §5.1: timestamps follow the sampling clock) but the sequence does not, so the
    /// far end sees no loss. The next packet starts a talkspurt and carries the marker.
    pub fn skip(&mut self, samples: u32) {
        self.relay = None;
        self.next_ts = self.next_ts.wrapping_add(samples);
        self.marker_pending = true;
    }

    /// Notes that a new source feeds this stream: timestamps stay continuous and the next
    /// packet carries the marker bit (RFC 3551 §4.1: start of a talkspurt).
    pub fn source_changed(&mut self) {
        self.relay = None;
        self.marker_pending = true;
    }

    /// Header for a packet relayed unchanged from an upstream source. Within one upstream
    /// source, gaps and reordering are preserved (so the far end still sees real loss); on
    /// a change of upstream SSRC, or after local frames, a new mapping continues our
    /// sequence and timestamp where they were. `samples` is the packet's duration.
    pub fn relay(&mut self, upstream: &RtpHeader, samples: u32) -> RtpHeader {
        let map = match self.relay {
            Some(m) if m.upstream == upstream.ssrc => m,
            _ => {
                self.marker_pending = true;
                let m = RelayMap {
                    upstream: upstream.ssrc,
                    seq_offset: self.next_seq.wrapping_sub(upstream.sequence),
                    ts_offset: self.next_ts.wrapping_sub(upstream.timestamp),
                };
                self.relay = Some(m);
                m
            }
        };
        let seq = upstream.sequence.wrapping_add(map.seq_offset);
        let ts = upstream.timestamp.wrapping_add(map.ts_offset);
        let mut h = self.header(upstream.payload_type, seq, ts);
        h.marker |= upstream.marker;
        // Only move forward: a reordered (older) packet must not pull next_seq back.
        if (seq.wrapping_sub(self.next_seq) as i16) >= 0 {
            self.next_seq = seq.wrapping_add(1);
            self.next_ts = ts.wrapping_add(samples);
        }
        h
    }

    /// Header for a telephone-event packet: RFC 4733 §2.3.1 every packet of one event shares
    /// the event's start timestamp while the sequence number advances.
    pub fn event_packet(
        &mut self,
        payload_type: PayloadType,
        marker: bool,
        timestamp: u32,
    ) -> RtpHeader {
        self.relay = None;
        let mut h = self.header(payload_type, self.next_seq, timestamp);
        h.marker = marker;
        self.next_seq = self.next_seq.wrapping_add(1);
        h
    }

    /// Records that a packet with `payload_len` octets went out (sender report counters,
    /// RFC 3550 §6.4.1).
    pub fn count_sent(&mut self, payload_len: usize) {
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload_len as u32);
    }

    /// Packets sent so far.
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets sent so far.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// The RTP timestamp of the last packet sent.
    pub fn last_timestamp(&self) -> u32 {
        self.last_ts
    }

    fn header(&mut self, payload_type: PayloadType, sequence: u16, timestamp: u32) -> RtpHeader {
        let marker = std::mem::take(&mut self.marker_pending);
        self.last_ts = timestamp;
        RtpHeader {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc: self.ssrc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn up(ssrc: u32, seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: PayloadType::PCMU,
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(ssrc),
        }
    }

    #[test]
    fn prompt_then_agent_then_prompt_is_one_continuous_stream() {
        let mut s = OutgoingStream::new(Ssrc(7), 65534, u32::MAX - 200);
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(s.next_frame(PayloadType::PCMU, 160)); // IVR prompt
        }
        for i in 0..3u16 {
            out.push(s.relay(&up(99, 5000 + i, 123_456 + 160 * i as u32), 160)); // agent
        }
        for i in 0..2u16 {
            out.push(s.relay(&up(42, 10 + i, 7 + 160 * i as u32), 160)); // agent re-INVITE
        }
        out.push(s.next_frame(PayloadType::PCMU, 160)); // hold music
        for w in out.windows(2) {
            assert_eq!(w[1].ssrc, Ssrc(7));
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        }
        let markers: Vec<bool> = out.iter().map(|h| h.marker).collect();
        assert_eq!(
            markers,
            [true, false, false, true, false, false, true, false, false]
        );
    }

    #[test]
    fn relay_preserves_upstream_loss_and_reordering() {
        let mut s = OutgoingStream::new(Ssrc(1), 100, 1000);
        let a = s.relay(&up(5, 10, 0), 160);
        let c = s.relay(&up(5, 12, 320), 160); // 11 lost or late
        let b = s.relay(&up(5, 11, 160), 160); // late arrival
        assert_eq!((a.sequence, b.sequence, c.sequence), (100, 101, 102));
        assert_eq!((a.timestamp, b.timestamp, c.timestamp), (1000, 1160, 1320));
        // The late packet did not pull the stream back.
        assert_eq!(s.next_frame(PayloadType::PCMU, 160).sequence, 103);
    }

    #[test]
    fn skip_advances_time_but_not_sequence() {
        let mut s = OutgoingStream::new(Ssrc(1), 0, 0);
        s.next_frame(PayloadType::PCMU, 160);
        s.skip(160 * 50);
        let h = s.next_frame(PayloadType::PCMU, 160);
        assert_eq!(h.sequence, 1);
        assert_eq!(h.timestamp, 160 * 51);
        assert!(h.marker);
    }

    proptest! {
        /// Whatever mix of local frames and relayed sources, the output sequence numbers
        /// advance by exactly one and the SSRC never changes, as long as upstream sources
        /// are themselves in order without loss.
        #[test]
        fn output_is_continuous(ops in proptest::collection::vec((0u8..4, any::<u16>(), any::<u32>(), 1usize..5), 1..30)) {
            let mut s = OutgoingStream::new(Ssrc(9), 0, 0);
            let mut prev: Option<RtpHeader> = None;
            for (idx, (kind, seq0, ts0, n)) in ops.into_iter().enumerate() {
                for i in 0..n {
                    let h = if kind == 0 {
                        s.next_frame(PayloadType::PCMU, 160)
                    } else {
                        s.relay(&up(idx as u32 * 4 + kind as u32, seq0.wrapping_add(i as u16), ts0.wrapping_add(160 * i as u32)), 160)
                    };
                    prop_assert_eq!(h.ssrc, Ssrc(9));
                    if let Some(p) = prev {
                        prop_assert_eq!(h.sequence, p.sequence.wrapping_add(1));
                        prop_assert_eq!(h.timestamp, p.timestamp.wrapping_add(160));
                    }
                    prev = Some(h);
                }
            }
        }
    }
}
