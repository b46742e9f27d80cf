//! Adaptive jitter buffer (hand-written, sans-IO).
//!
//! `push` files a packet by its extended sequence number into a fixed ring; `pop` is called
//! once per 20 ms tick by the engine clock and returns the next frame, a request to conceal a
//! lost frame, or silence while (re)buffering. Invariants, property-tested below:
//! - a sequence number is played at most once, and played sequence numbers only increase;
//! - memory is bounded: the ring has a fixed number of slots and payloads a maximum size;
//! - latency is bounded: the depth never exceeds `max_delay_frames` after a `pop`.
//!
//! The target depth adapts to the interarrival jitter estimated as in RFC 3550 Appendix A.8;
//! when the buffer holds more than the target for a while, one frame is dropped (a 20 ms
//! skip in the talker's audio) to bring latency back down.
//!
//! The RFC 3550 estimate is smoothed (gain 1/16) and follows steady jitter, not bursts: a
//! sender that stalls and then sends what it held at once (a busy browser's audio thread)
//! keeps it low while packet after packet arrives after its playout time. So a late packet
//! raises the target at once by how late it was (a peak, held for [`PEAK_HOLD_TICKS`] after
//! the last late packet, then let down one frame at a time): the next burst finds room.

use crate::rtp::RtpHeader;
use std::time::{Duration, Instant};

/// Largest payload accepted (one Ethernet MTU).
pub const MAX_PAYLOAD: usize = 1500;

/// Jitter buffer tuning.
#[derive(Debug, Clone, Copy)]
pub struct JitterConfig {
    /// Payload clock rate (8000 for G.711, 48000 for Opus RTP timestamps).
    pub clock_rate: u32,
    /// Frame duration; one packet carries one frame.
    pub frame: Duration,
    /// Smallest target depth in frames.
    pub min_delay_frames: u32,
    /// Largest depth in frames: the latency bound.
    pub max_delay_frames: u32,
    /// Consecutive concealed frames with nothing buffered before the buffer re-primes
    /// (the talker stopped sending: silence suppression, hold, a source change).
    pub max_conceal_frames: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            frame: Duration::from_millis(20),
            min_delay_frames: 2,
            max_delay_frames: 10,
            max_conceal_frames: 5,
        }
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Queued,
    /// Already held or already played: dropped.
    Duplicate,
    /// Arrived after its playout time: dropped.
    Late,
    /// Payload larger than [`MAX_PAYLOAD`]: dropped.
    TooLarge,
    /// A sequence jump too large to be reordering: the buffer restarted on this packet.
    Restarted,
}

/// What to play for this tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// A received frame.
    Frame {
        /// RTP sequence number.
        sequence: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// Encoded payload.
        payload: &'a [u8],
    },
    /// The frame due now was lost: the decoder should conceal (G.711 PLC, Opus PLC).
    Conceal,
    /// Nothing to play (not started, or re-buffering after the talker went quiet).
    Silence,
}

/// Counters for the call's RTCP/quality events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames played.
    pub played: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Packets that arrived too late.
    pub late: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Frames dropped to bound or shrink latency.
    pub dropped: u64,
    /// Frames of concealment played in front of a frame that was there, to deepen the
    /// buffer after late packets.
    pub stretched: u64,
}

#[derive(Debug, Default)]
struct Slot {
    occupied: bool,
    seq: u64,
    timestamp: u32,
    payload: Vec<u8>,
}

/// Adaptive, reordering jitter buffer for one incoming stream.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    slots: Vec<Slot>,
    count: usize,
    /// Highest extended sequence number held or played.
    highest: Option<u64>,
    /// Packets below this are late; equals the next sequence to play while playing.
    floor: Option<u64>,
    playing: bool,
    first_buffered_at: Option<Instant>,
    conceal_run: u32,
    over_target_ticks: u32,
    epoch: Option<Instant>,
    transit: Option<i64>,
    jitter_q4: u64,
    target: u32,
    /// The target the RFC 3550 jitter estimate asks for.
    base: u32,
    /// Depth asked for by late packets (see the module docs); 0 when none came lately.
    peak: u32,
    /// Ticks since the last late packet.
    since_late: u32,
    /// Frames of delay still to add (late packets ask for them; see [`JitterBuffer::pop`]).
    grow: u32,
    stats: JitterStats,
}

/// Sequence numbers more than this far from the current window are a new stream.
const RESTART_GAP: u64 = 1000;
/// Ticks spent above target + 2 before one frame is dropped.
const SHRINK_AFTER_TICKS: u32 = 25;
/// Ticks (10 s) without a late packet before the peak depth is let down by one frame.
pub const PEAK_HOLD_TICKS: u32 = 500;

impl JitterBuffer {
    /// A buffer with the given configuration.
    pub fn new(mut cfg: JitterConfig) -> Self {
        cfg.max_delay_frames = cfg.max_delay_frames.max(1);
        cfg.min_delay_frames = cfg.min_delay_frames.clamp(1, cfg.max_delay_frames);
        // Room for the whole delay window plus as much reordering again.
        let capacity = 2 * cfg.max_delay_frames as usize + 2;
        Self {
            slots: (0..capacity).map(|_| Slot::default()).collect(),
            count: 0,
            highest: None,
            floor: None,
            playing: false,
            first_buffered_at: None,
            conceal_run: 0,
            over_target_ticks: 0,
            epoch: None,
            transit: None,
            jitter_q4: 0,
            target: cfg.min_delay_frames,
            base: cfg.min_delay_frames,
            peak: 0,
            since_late: 0,
            grow: 0,
            stats: JitterStats::default(),
            cfg,
        }
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of slots: the memory bound.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The current target depth in frames.
    pub fn target_frames(&self) -> u32 {
        self.target
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            // Nearest extended value to the reference (RFC 3550 A.1 style wrap handling).
            Some(h) => (h as i64 + seq.wrapping_sub(h as u16) as i16 as i64) as u64,
            None => (1u64 << 32) + seq as u64,
        }
    }

    fn lowest_held(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter(|s| s.occupied)
            .map(|s| s.seq)
            .min()
    }

    fn clear(&mut self) {
        for s in &mut self.slots {
            s.occupied = false;
        }
        self.count = 0;
        self.highest = None;
        self.floor = None;
        self.playing = false;
        self.first_buffered_at = None;
        self.conceal_run = 0;
        self.transit = None;
    }

    /// Files a received packet.
    pub fn push(&mut self, now: Instant, header: &RtpHeader, payload: &[u8]) -> PushOutcome {
        if payload.len() > MAX_PAYLOAD {
            return PushOutcome::TooLarge;
        }
        let mut outcome = PushOutcome::Queued;
        let mut ext = self.extend(header.sequence);
        if let Some(h) = self.highest
            && ext.abs_diff(h) > RESTART_GAP
        {
            self.clear();
            ext = self.extend(header.sequence);
            outcome = PushOutcome::Restarted;
        }
        if let Some(f) = self.floor.filter(|f| ext < *f) {
            self.stats.late += 1;
            self.late_by(f - ext);
            return PushOutcome::Late;
        }
        let cap = self.slots.len() as u64;
        let highest = self.highest.unwrap_or(ext).max(ext);
        // Keep every held packet within one ring turn of the newest: drop the oldest.
        let window_start = highest + 1 - cap;
        if ext < window_start {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        for slot in &mut self.slots {
            if slot.occupied && slot.seq < window_start {
                slot.occupied = false;
                self.count -= 1;
                self.stats.dropped += 1;
            }
        }
        if self.playing {
            self.floor = self.floor.map(|f| f.max(window_start));
        }
        let idx = (ext % cap) as usize;
        let slot = &mut self.slots[idx];
        if slot.occupied {
            // Only the same sequence can sit here: older ones were evicted above.
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        slot.occupied = true;
        slot.seq = ext;
        slot.timestamp = header.timestamp;
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.count += 1;
        self.highest = Some(highest);
        if self.first_buffered_at.is_none() {
            self.first_buffered_at = Some(now);
        }
        self.update_jitter(now, header.timestamp);
        outcome
    }

    // RFC 3550 Appendix A.8 estimator; the target covers about three times the jitter.
    fn update_jitter(&mut self, now: Instant, ts: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = (now.saturating_duration_since(epoch).as_micros() as u64
            * self.cfg.clock_rate as u64
            / 1_000_000) as i64;
        let transit = arrival - ts as i64;
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs();
            // Big jumps are a timestamp discontinuity, not jitter.
            if d < self.cfg.clock_rate as u64 {
                self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
            }
        }
        self.transit = Some(transit);
        let frame_ts =
            (self.cfg.frame.as_micros() as u64 * self.cfg.clock_rate as u64 / 1_000_000).max(1);
        let want = (3 * (self.jitter_q4 >> 4)).div_ceil(frame_ts) as u32 + 1;
        self.base = want.clamp(self.cfg.min_delay_frames, self.cfg.max_delay_frames);
        self.target = self.base.max(self.peak);
    }

    /// A packet came `frames` after its playout: the depth it would have needed is held.
    fn late_by(&mut self, frames: u64) {
        let need = (self.base as u64 + frames).min(self.cfg.max_delay_frames as u64) as u32;
        self.peak = self.peak.max(need);
        self.target = self.base.max(self.peak);
        self.since_late = 0;
        // Depth only grows if playout waits: that many frames of concealment go in front of
        // the next ones (what a busy sender's stalls then fall into).
        self.grow = self
            .grow
            .max(frames.min(self.cfg.max_delay_frames as u64) as u32);
    }

    /// The frame to play for the tick at `now`.
    pub fn pop(&mut self, now: Instant) -> Playout<'_> {
        if self.peak > 0 {
            self.since_late += 1;
            if self.since_late >= PEAK_HOLD_TICKS {
                self.since_late = 0;
                self.peak -= 1;
                self.target = self.base.max(self.peak);
            }
        }
        if !self.playing {
            let Some(lowest) = self.lowest_held() else {
                return Playout::Silence;
            };
            let span = self.highest.map_or(0, |h| h + 1 - lowest);
            let waited = self
                .first_buffered_at
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            if span < self.target as u64 && waited < self.cfg.frame * self.target {
                return Playout::Silence;
            }
            self.playing = true;
            self.conceal_run = 0;
            self.floor = Some(lowest);
        }
        // Bound and adapt latency before choosing the frame.
        let mut next = self.floor.unwrap_or(0);
        if let Some(h) = self.highest {
            let depth = (h + 1).saturating_sub(next);
            let excess = if depth > self.cfg.max_delay_frames as u64 {
                depth - self.target as u64
            } else if depth > self.target as u64 + 2 {
                self.over_target_ticks += 1;
                if self.over_target_ticks >= SHRINK_AFTER_TICKS {
                    self.over_target_ticks = 0;
                    1
                } else {
                    0
                }
            } else {
                self.over_target_ticks = 0;
                0
            };
            for _ in 0..excess {
                self.discard(next);
                next += 1;
            }
            if excess == 0 && self.grow > 0 {
                if depth < self.target as u64 {
                    // Wait one tick with the frame in hand: 20 ms more delay from now on.
                    self.grow -= 1;
                    self.floor = Some(next);
                    self.stats.stretched += 1;
                    return Playout::Conceal;
                }
                self.grow = 0;
            }
        }
        self.floor = Some(next + 1);
        let cap = self.slots.len() as u64;
        let idx = (next % cap) as usize;
        if self.slots[idx].occupied && self.slots[idx].seq == next {
            self.slots[idx].occupied = false;
            self.count -= 1;
            self.conceal_run = 0;
            self.stats.played += 1;
            let slot = &self.slots[idx];
            return Playout::Frame {
                sequence: slot.seq as u16,
                timestamp: slot.timestamp,
                payload: &slot.payload,
            };
        }
        self.conceal_run += 1;
        if self.count == 0 && self.conceal_run > self.cfg.max_conceal_frames {
            // The talker went quiet: prime again before playing, keep the floor.
            self.playing = false;
            self.first_buffered_at = None;
            return Playout::Silence;
        }
        self.stats.concealed += 1;
        Playout::Conceal
    }

    fn discard(&mut self, seq: u64) {
        let cap = self.slots.len() as u64;
        let slot = &mut self.slots[(seq % cap) as usize];
        if slot.occupied && slot.seq == seq {
            slot.occupied = false;
            self.count -= 1;
        }
        self.stats.dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{PayloadType, Ssrc};
    use proptest::prelude::*;

    fn hdr(seq: u16) -> RtpHeader {
        RtpHeader {
            marker: false,
            payload_type: PayloadType::PCMU,
            sequence: seq,
            timestamp: (seq as u32).wrapping_mul(160),
            ssrc: Ssrc(1),
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Plays `n` ticks, returning the sequences played (None = conceal/silence).
    fn drain(jb: &mut JitterBuffer, t0: Instant, from_ms: u64, n: u64) -> Vec<Option<u16>> {
        (0..n)
            .map(|i| match jb.pop(ms(t0, from_ms + 20 * i)) {
                Playout::Frame { sequence, .. } => Some(sequence),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_order_stream_plays_every_frame_after_priming() {
        let _serial = crate::test_signal::REALTIME.blocking_lock();
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut played = Vec::new();
        for i in 0..50u16 {
            let seq = 65530u16.wrapping_add(i);
            assert_eq!(
                jb.push(ms(t0, 20 * i as u64), &hdr(seq), &[i as u8]),
                PushOutcome::Queued
            );
            match jb.pop(ms(t0, 20 * i as u64 + 1)) {
                Playout::Frame {
                    sequence, payload, ..
                } => {
                    assert_eq!(payload, &[sequence.wrapping_sub(65530) as u8]);
                    played.push(sequence)
                }
                Playout::Conceal => panic!("no loss here"),
                Playout::Silence => {}
            }
        }
        assert_eq!(played.len(), 49, "one tick of priming at min delay 2");
        for w in played.windows(2) {
            assert_eq!(w[1], w[0].wrapping_add(1));
        }
    }

    #[test]
    fn reordered_packets_play_in_order_and_loss_is_concealed() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for seq in [1u16, 0, 3, 2, 5, 7, 6] {
            jb.push(t0, &hdr(seq), &[seq as u8]);
        }
        let out = drain(&mut jb, t0, 40, 8);
        assert_eq!(
            out,
            vec![
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                None,
                Some(5),
                Some(6),
                Some(7)
            ]
        );
        assert_eq!(jb.stats().concealed, 1);
        // 4 arrives now: too late.
        assert_eq!(jb.push(t0, &hdr(4), &[4]), PushOutcome::Late);
        assert_eq!(jb.push(t0, &hdr(9), &[9]), PushOutcome::Queued);
        assert_eq!(jb.push(t0, &hdr(9), &[9]), PushOutcome::Duplicate);
    }

    #[test]
    fn jitter_raises_the_target_and_steady_arrival_lowers_latency() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // Packets arrive alternately on time and 60 ms late.
        for i in 0..200u64 {
            let late = if i % 2 == 1 { 60 } else { 0 };
            jb.push(ms(t0, 20 * i + late), &hdr(i as u16), &[0]);
        }
        assert!(jb.target_frames() >= 6, "target {}", jb.target_frames());
        assert!(jb.target_frames() <= 10);
    }

    /// A sender that stalls 100 ms every second and then sends what it held at once (a busy
    /// browser): the steady-state RFC 3550 estimate barely moves, but the late packets of the
    /// first stall raise the target, so later stalls lose (almost) nothing; after 10 s of
    /// regular arrival the depth comes back down.
    #[test]
    fn late_bursts_raise_the_target_at_once_and_it_comes_down_later() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // Arrival (ms) of each frame: frames 20..24 of each second come with frame 25.
        let arrival = |seq: u64| {
            let i = seq % 50;
            let sent = if (20..25).contains(&i) {
                seq - i + 25
            } else {
                seq
            };
            20 * sent + 1
        };
        let mut concealed_per_second = Vec::new();
        let mut next = 0u64;
        for second in 0..6u64 {
            let before = jb.stats().concealed;
            for tick in second * 50..(second + 1) * 50 {
                let now = 20 * tick + 10;
                while arrival(next) <= now {
                    jb.push(ms(t0, arrival(next)), &hdr(next as u16), &[0]);
                    next += 1;
                }
                jb.pop(ms(t0, now));
            }
            concealed_per_second.push(jb.stats().concealed - before);
        }
        assert!(jb.stats().late > 0, "the first stall makes late packets");
        assert!(jb.target_frames() >= 5, "target {}", jb.target_frames());
        let later: u64 = concealed_per_second[2..].iter().sum();
        assert!(
            later <= 1,
            "after the first stall, stalls cost nothing: {concealed_per_second:?}"
        );
        // Regular arrival for longer than the hold: the target goes back down.
        for seq in next..next + 3 * PEAK_HOLD_TICKS as u64 {
            jb.push(ms(t0, 20 * seq + 1), &hdr(seq as u16), &[0]);
            jb.pop(ms(t0, 20 * seq + 10));
        }
        assert!(jb.target_frames() < 5, "target {}", jb.target_frames());
    }

    #[test]
    fn a_burst_is_cut_down_to_the_latency_bound() {
        let t0 = Instant::now();
        let cfg = JitterConfig::default();
        let mut jb = JitterBuffer::new(cfg);
        for seq in 0..20u16 {
            jb.push(t0, &hdr(seq), &[seq as u8]);
        }
        assert!(jb.len() <= jb.capacity());
        let first = drain(&mut jb, t0, 0, 1)[0].unwrap();
        // Depth after the pop is within the bound.
        assert!(19 - first as u32 <= cfg.max_delay_frames);
        assert!(jb.stats().dropped > 0);
    }

    #[test]
    fn talker_pause_reprimes_and_new_source_restarts() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for seq in 0..3u16 {
            jb.push(t0, &hdr(seq), &[0]);
        }
        let out = drain(&mut jb, t0, 40, 10);
        assert_eq!(&out[..3], &[Some(0), Some(1), Some(2)]);
        assert_eq!(jb.stats().concealed, 5);
        assert_eq!(jb.pop(ms(t0, 400)), Playout::Silence);
        assert_eq!(jb.push(t0, &hdr(30_000), &[1]), PushOutcome::Restarted);
        assert_eq!(jb.push(t0, &hdr(30_001), &[0; 1501]), PushOutcome::TooLarge);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push { index: u16, delay_ms: u64 },
        Dup { index: u16 },
    }

    proptest! {
        /// Random loss, reordering, duplication and delay: nothing plays twice, order is kept,
        /// payloads match their sequence, memory and latency stay bounded.
        #[test]
        fn invariants_hold_under_network_chaos(
            start in any::<u16>(),
            ops in proptest::collection::vec(
                prop_oneof![
                    8 => (0u16..400, 0u64..150).prop_map(|(index, delay_ms)| Op::Push { index, delay_ms }),
                    1 => (0u16..400).prop_map(|index| Op::Dup { index }),
                ], 1..400),
            max_delay in 2u32..15,
        ) {
            let cfg = JitterConfig { max_delay_frames: max_delay, ..JitterConfig::default() };
            let mut jb = JitterBuffer::new(cfg);
            let t0 = Instant::now();
            // Each packet i is sent at 20*i ms and arrives after its delay.
            let mut arrivals: Vec<(u64, u16)> = ops.iter().map(|op| match *op {
                Op::Push { index, delay_ms } => (20 * index as u64 + delay_ms, index),
                Op::Dup { index } => (20 * index as u64 + 5, index),
            }).collect();
            arrivals.sort();
            let mut played: Vec<u16> = Vec::new();
            let mut a = 0;
            for tick in 0..450u64 {
                let now = 20 * tick;
                while a < arrivals.len() && arrivals[a].0 <= now {
                    let idx = arrivals[a].1;
                    let seq = start.wrapping_add(idx);
                    jb.push(ms(t0, arrivals[a].0), &hdr(seq), &idx.to_be_bytes());
                    prop_assert!(jb.len() <= jb.capacity());
                    a += 1;
                }
                if let Playout::Frame { sequence, payload, .. } = jb.pop(ms(t0, now)) {
                    let idx = u16::from_be_bytes([payload[0], payload[1]]);
                    prop_assert_eq!(sequence, start.wrapping_add(idx));
                    if let Some(&prev) = played.last() {
                        prop_assert!(idx > prev, "played {} after {}", idx, prev);
                    }
                    played.push(idx);
                }
                // Latency bound: what is held spans at most max_delay frames past the floor.
                if let (Some(h), Some(f), true) = (jb.highest, jb.floor, jb.playing) {
                    prop_assert!(h + 1 - f.min(h + 1) <= max_delay as u64);
                }
            }
        }
    }
}
