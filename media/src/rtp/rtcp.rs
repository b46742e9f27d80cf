//! RTCP (RFC 3550 §6): compound packet parsing, sender/receiver report building, and the
//! receiver statistics behind report blocks — sequence validation (Appendix A.1), loss
//! (A.3) and interarrival jitter (A.8).

use super::{RtpHeader, Ssrc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Errors parsing RTCP; all are the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// A header or its length field points past the end of the datagram.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("RTCP version {0} is not 2")]
    BadVersion(u8),
    /// RFC 3550 §6.1: a compound packet starts with SR or RR.
    #[error("RTCP compound packet does not start with SR or RR")]
    NotReportFirst,
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp (64-bit, 32.32 fixed point seconds since 1900).
    pub ntp: u64,
    /// RTP timestamp for the same instant.
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's payload octet count.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: Ssrc,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR, PT 200.
    SenderReport {
        /// Sender's SSRC.
        ssrc: Ssrc,
        /// Sender information.
        info: SenderInfo,
        /// Reception reports.
        reports: Vec<ReportBlock>,
    },
    /// RR, PT 201.
    ReceiverReport {
        /// Reporter's SSRC.
        ssrc: Ssrc,
        /// Reception reports.
        reports: Vec<ReportBlock>,
    },
    /// BYE, PT 203.
    Bye {
        /// Sources leaving.
        sources: Vec<Ssrc>,
    },
    /// Any other type (SDES, APP, feedback), skipped.
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if body.len() < 24 * count {
        return Err(RtcpError::Truncated);
    }
    Ok((0..count)
        .map(|i| {
            let b = &body[24 * i..24 * i + 24];
            // Sign-extend the 24-bit cumulative loss.
            let lost = ((be32(b, 4) << 8) as i32) >> 8;
            ReportBlock {
                ssrc: Ssrc(be32(b, 0)),
                fraction_lost: b[4],
                cumulative_lost: lost,
                highest_seq: be32(b, 8),
                jitter: be32(b, 12),
                last_sr: be32(b, 16),
                delay_since_last_sr: be32(b, 20),
            }
        })
        .collect())
}

/// Parses a compound RTCP datagram (RFC 3550 §6.1). SRTCP is not handled here.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let count = (rest[0] & 0x1F) as usize;
        let pt = rest[1];
        let len = (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1) * 4;
        if rest.len() < len {
            return Err(RtcpError::Truncated);
        }
        let body = &rest[4..len];
        if out.is_empty() && pt != PT_SR && pt != PT_RR {
            return Err(RtcpError::NotReportFirst);
        }
        let packet = match pt {
            PT_SR => {
                if body.len() < 24 {
                    return Err(RtcpError::Truncated);
                }
                RtcpPacket::SenderReport {
                    ssrc: Ssrc(be32(body, 0)),
                    info: SenderInfo {
                        ntp: ((be32(body, 4) as u64) << 32) | be32(body, 8) as u64,
                        rtp_timestamp: be32(body, 12),
                        packet_count: be32(body, 16),
                        octet_count: be32(body, 20),
                    },
                    reports: parse_blocks(&body[24..], count)?,
                }
            }
            PT_RR => {
                if body.len() < 4 {
                    return Err(RtcpError::Truncated);
                }
                RtcpPacket::ReceiverReport {
                    ssrc: Ssrc(be32(body, 0)),
                    reports: parse_blocks(&body[4..], count)?,
                }
            }
            PT_BYE => {
                if body.len() < 4 * count {
                    return Err(RtcpError::Truncated);
                }
                RtcpPacket::Bye {
                    sources: (0..count).map(|i| Ssrc(be32(body, 4 * i))).collect(),
                }
            }
            other => RtcpPacket::Other { packet_type: other },
        };
        out.push(packet);
        rest = &rest[len..];
    }
    Ok(out)
}

fn write_header(out: &mut Vec<u8>, count: usize, pt: u8, words_after_header: usize) {
    out.push(0x80 | count as u8);
    out.push(pt);
    out.extend_from_slice(&(words_after_header as u16).to_be_bytes());
}

fn write_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        out.extend_from_slice(&b.ssrc.0.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0xFF_FFFF;
        out.extend_from_slice(&(((b.fraction_lost as u32) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

fn write_sdes_cname(out: &mut Vec<u8>, ssrc: Ssrc, cname: &str) {
    // RFC 3550 §6.5: one chunk, CNAME item (type 1), then a null item, padded to 32 bits.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let chunk_len = 4 + 2 + name.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    write_header(out, 1, PT_SDES, padded / 4);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk_len) + 1, 0);
}

/// Writes a compound SR + SDES CNAME into `out` (cleared first). At most 31 blocks are sent.
pub fn write_sender_report(
    ssrc: Ssrc,
    info: &SenderInfo,
    blocks: &[ReportBlock],
    cname: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    let blocks = &blocks[..blocks.len().min(31)];
    write_header(out, blocks.len(), PT_SR, 6 + 6 * blocks.len());
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    write_blocks(out, blocks);
    write_sdes_cname(out, ssrc, cname);
}

/// Writes a compound RR + SDES CNAME into `out` (cleared first). At most 31 blocks are sent.
pub fn write_receiver_report(ssrc: Ssrc, blocks: &[ReportBlock], cname: &str, out: &mut Vec<u8>) {
    out.clear();
    let blocks = &blocks[..blocks.len().min(31)];
    write_header(out, blocks.len(), PT_RR, 1 + 6 * blocks.len());
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    write_blocks(out, blocks);
    write_sdes_cname(out, ssrc, cname);
}

/// A wall-clock time as a 64-bit NTP timestamp (RFC 3550 §4).
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u32 = 3000;
const MAX_MISORDER: u32 = 100;
const MIN_SEQUENTIAL: u32 = 2;

/// Receive-side statistics for one remote source (RFC 3550 Appendix A.1, A.3, A.8).
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    ssrc: Option<Ssrc>,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    transit: Option<i64>,
    jitter_q4: u64,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
}

/// A summary of reception quality for the call actor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceptionSummary {
    /// Packets expected so far.
    pub expected: u32,
    /// Cumulative lost (negative with duplicates).
    pub lost: i32,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
}

impl ReceiverStats {
    /// Statistics for a source whose payload runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            ssrc: None,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            epoch: None,
            last_sr: None,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Feeds one received packet arriving at `now`. Returns whether the packet is valid
    /// under the A.1 rules (false while on probation or after a wild sequence jump).
    pub fn on_packet(&mut self, now: Instant, header: &RtpHeader) -> bool {
        if self.ssrc != Some(header.ssrc) {
            // A new source (RFC 3550 §8.2: SSRC change) restarts the statistics.
            *self = Self::new(self.clock_rate);
            self.ssrc = Some(header.ssrc);
            self.init_seq(header.sequence);
            self.max_seq = header.sequence.wrapping_sub(1);
        }
        let valid = self.update_seq(header.sequence);
        if valid {
            self.update_jitter(now, header.timestamp);
        }
        valid
    }

    // RFC 3550 Appendix A.1 update_seq.
    fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq) as u32;
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if udelta <= RTP_SEQ_MOD - MAX_MISORDER {
            if seq as u32 == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init_seq(seq);
                self.transit = None;
            } else {
                self.bad_seq = (seq as u32 + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted as received.
        self.received = self.received.wrapping_add(1);
        true
    }

    // RFC 3550 Appendix A.8.
    fn update_jitter(&mut self, now: Instant, rtp_ts: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = (now.duration_since(epoch).as_micros() as u64 * self.clock_rate as u64
            / 1_000_000) as i64;
        // The RTP timestamp is relative to an arbitrary origin; wrap it into i64 via u32.
        let transit = arrival - rtp_ts as i64;
        if let Some(prev) = self.transit {
            let mut d = transit - prev;
            // Timestamp wrap-around shows as a ~2^32 jump; fold it back.
            if d > i64::from(u32::MAX) / 2 {
                d -= 1 << 32;
            } else if d < -(i64::from(u32::MAX) / 2) {
                d += 1 << 32;
            }
            let d = d.unsigned_abs();
            // Integer form from A.8: J += |D| - J/16, with J kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Notes a sender report from this source, for LSR/DLSR in our next report block.
    pub fn on_sender_report(&mut self, now: Instant, info: &SenderInfo) {
        self.last_sr = Some(((info.ntp >> 16) as u32, now));
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(self.max_seq as u32)
    }

    /// Cumulative figures, without touching the per-report interval state.
    /// The source being measured, once a packet arrived.
    pub fn current_ssrc(&self) -> Option<Ssrc> {
        self.ssrc
    }

    pub fn summary(&self) -> ReceptionSummary {
        let expected = self
            .extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1);
        let expected = if self.received == 0 { 0 } else { expected };
        ReceptionSummary {
            expected,
            lost: (expected as i64 - self.received as i64).clamp(-0x80_0000, 0x7F_FFFF) as i32,
            jitter_ms: (self.jitter_q4 >> 4) as f64 * 1000.0 / self.clock_rate as f64,
        }
    }

    /// The report block for our next SR/RR (RFC 3550 Appendix A.3); starts a new interval.
    /// `None` until a valid packet has been received.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        if self.received == 0 {
            return None;
        }
        let s = self.summary();
        let expected_interval = s.expected.wrapping_sub(self.expected_prior);
        self.expected_prior = s.expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (lsr, ((d.as_micros() as u64 * 65536) / 1_000_000) as u32)
            }
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: s.lost,
            highest_seq: self.extended_max(),
            jitter: (self.jitter_q4 >> 4) as u32,
            last_sr,
            delay_since_last_sr,
        })
    }
}

/// Round-trip time from a report block about our stream (RFC 3550 §6.4.1: A − LSR − DLSR),
/// given the NTP time the block arrived. `None` if the peer has not seen an SR from us.
pub fn round_trip_time(arrival_ntp: u64, block: &ReportBlock) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let a = (arrival_ntp >> 16) as u32;
    let rtt = a
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    // Negative (wrapped) results mean clock trouble on the peer; ignore them.
    (rtt < 0x8000_0000).then(|| Duration::from_micros(rtt as u64 * 1_000_000 / 65536))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::PayloadType;
    use proptest::prelude::*;

    fn pkt(seq: u16, ts: u32) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: PayloadType::PCMU,
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(0xAB),
        }
    }

    #[test]
    fn sender_report_round_trips_with_sdes() {
        let info = SenderInfo {
            ntp: 0x1122_3344_5566_7788,
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        let block = ReportBlock {
            ssrc: Ssrc(5),
            fraction_lost: 64,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 12,
            last_sr: 0x3344_5566,
            delay_since_last_sr: 65536,
        };
        let mut buf = Vec::new();
        write_sender_report(Ssrc(1), &info, &[block], "leg@cti", &mut buf);
        assert_eq!(buf.len() % 4, 0);
        let parsed = parse_compound(&buf).unwrap();
        assert_eq!(
            parsed,
            vec![
                RtcpPacket::SenderReport {
                    ssrc: Ssrc(1),
                    info,
                    reports: vec![block]
                },
                RtcpPacket::Other {
                    packet_type: PT_SDES
                }
            ]
        );
        write_receiver_report(Ssrc(2), &[block], "x", &mut buf);
        assert_eq!(
            parse_compound(&buf).unwrap()[0],
            RtcpPacket::ReceiverReport {
                ssrc: Ssrc(2),
                reports: vec![block]
            }
        );
    }

    #[test]
    fn malformed_rtcp_is_an_error() {
        assert_eq!(parse_compound(&[0x80, 200, 0]), Err(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&[0x80, 200, 0, 9, 0, 0, 0, 0]),
            Err(RtcpError::Truncated)
        );
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]),
            Err(RtcpError::BadVersion(1))
        );
        assert_eq!(
            parse_compound(&[0x80, 202, 0, 0]),
            Err(RtcpError::NotReportFirst)
        );
        // RR claiming one block but carrying none.
        assert_eq!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
    }

    #[test]
    fn loss_fraction_and_cumulative_per_appendix_a3() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        // 100 packets, every 10th lost; sequence wraps through 65535.
        for i in 0..100u16 {
            if i % 10 == 5 {
                continue;
            }
            let seq = 65500u16.wrapping_add(i);
            s.on_packet(
                t0 + Duration::from_millis(20 * i as u64),
                &pkt(seq, 160 * i as u32),
            );
        }
        let b = s.report_block(t0 + Duration::from_secs(2)).unwrap();
        // The first packet is spent on probation (A.1), so 99 are expected from base.
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.highest_seq, 65536 + 65500u32.wrapping_add(99) - 65536);
        assert_eq!(b.fraction_lost, (10 * 256 / 99) as u8);
        assert_eq!(b.jitter, 0, "perfect pacing has no jitter");
        // Next interval with no loss reports zero fraction but keeps the cumulative count.
        for i in 100..150u16 {
            let seq = 65500u16.wrapping_add(i);
            s.on_packet(
                t0 + Duration::from_millis(20 * i as u64),
                &pkt(seq, 160 * i as u32),
            );
        }
        let b = s.report_block(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
    }

    #[test]
    fn jitter_converges_to_the_mean_deviation_per_appendix_a8() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        // Arrival alternates 0 / +10 ms around the ideal: |D| = 80 ts units every packet.
        for i in 0..2000u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            s.on_packet(
                t0 + Duration::from_millis(20 * i as u64 + late),
                &pkt(i as u16, 160 * i),
            );
        }
        let j = s.report_block(t0).unwrap().jitter;
        assert!((75..=80).contains(&j), "jitter {j}");
        assert!((s.summary().jitter_ms - 10.0).abs() < 1.0);
    }

    #[test]
    fn source_restart_after_big_jump_is_accepted_on_second_packet() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        for i in 0..10u16 {
            assert_eq!(s.on_packet(t0, &pkt(i, 0)), i >= 1);
        }
        assert!(!s.on_packet(t0, &pkt(30_000, 0)));
        assert!(s.on_packet(t0, &pkt(30_001, 0)));
        assert_eq!(s.summary().lost, 0);
    }

    #[test]
    fn rtt_from_lsr_and_dlsr() {
        let block = ReportBlock {
            ssrc: Ssrc(1),
            fraction_lost: 0,
            cumulative_lost: 0,
            highest_seq: 0,
            jitter: 0,
            last_sr: 0x0001_0000,       // 1.0 s
            delay_since_last_sr: 32768, // 0.5 s
        };
        let rtt = round_trip_time(0x0000_0001_8000_0000, &block).unwrap();
        // A = 1.5 s: 1.5 - 1.0 - 0.5 = 0.
        assert_eq!(rtt, Duration::ZERO);
        let rtt = round_trip_time(0x0000_0001_C000_0000, &block).unwrap();
        assert_eq!(rtt, Duration::from_millis(250));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_compound(&bytes);
        }
    }
}
