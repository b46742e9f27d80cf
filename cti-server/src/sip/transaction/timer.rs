//! Transaction timers as data (RFC 3261 §17, Table 4; RFC 6026 §8.11).
//!
//! A machine owns one [`TimerTable`]: a deadline per [`Timer`], set, stopped and queried
//! with plain instants. Nothing here reads a clock.

use std::time::{Duration, Instant};

/// The RFC 3261 base timer values (§17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message will remain in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s over UDP, zero over reliable transports (§17.1.1.2).
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1_x64() / 2)
        }
    }

    /// Timer I: T4 over UDP, zero over reliable transports (§17.2.1).
    pub fn timer_i(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 over UDP, zero over reliable transports (§17.2.2).
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1_x64()
        }
    }

    /// Timer K: T4 over UDP, zero over reliable transports (§17.1.2.2).
    pub fn timer_k(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }
}

/// The transaction timers. A..K are RFC 3261's, L and M come from RFC 6026; the last two
/// are duties RFC 3261 gives the transaction user, done by the layer here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmit interval, UDP only (§17.1.1.2).
    A,
    /// INVITE transaction timeout (§17.1.1.2).
    B,
    /// Wait time for response retransmits after a non-2xx final (§17.1.1.2).
    D,
    /// Non-INVITE request retransmit interval, UDP only (§17.1.2.2).
    E,
    /// Non-INVITE transaction timeout (§17.1.2.2).
    F,
    /// INVITE non-2xx final response retransmit interval, UDP only (§17.2.1).
    G,
    /// Wait time for ACK receipt (§17.2.1).
    H,
    /// Wait time for ACK retransmits (§17.2.1).
    I,
    /// Wait time for non-INVITE request retransmits (§17.2.2).
    J,
    /// Wait time for non-INVITE response retransmits (§17.1.2.2).
    K,
    /// Server INVITE: wait time in Accepted for retransmitted INVITEs and the ACK (RFC 6026 §8.7).
    L,
    /// Client INVITE: wait time in Accepted for 2xx retransmissions (RFC 6026 §8.4).
    M,
    /// Server INVITE: send 100 Trying if the TU has not answered within 200 ms (§17.2.1).
    Trying,
    /// Server INVITE in Accepted: 2xx retransmit interval, UDP only (§13.3.1.4).
    Retransmit2xx,
}

impl Timer {
    /// Every timer, in table order.
    pub const ALL: [Timer; 14] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
        Timer::Trying,
        Timer::Retransmit2xx,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One deadline per [`Timer`] (quinn-proto style): `set`, `stop`, `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms (or re-arms) `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = Default::default();
    }

    /// When `timer` fires, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// True while `timer` is armed.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the earliest timer due at `now` (ties go to table order).
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .iter()
            .copied()
            .filter(|t| self.get(*t).is_some_and(|d| d <= now))
            .min_by_key(|t| self.get(*t))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_set_stop_next_and_pop_in_deadline_order() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::B, t0 + Duration::from_secs(32));
        t.set(Timer::A, t0 + Duration::from_millis(500));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(t.pop_expired(t0), None);
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::A));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), Some(Timer::B));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(40)), None);
        t.set(Timer::K, t0);
        t.stop(Timer::K);
        assert!(!t.is_set(Timer::K));
    }

    #[test]
    fn reliable_transports_zero_the_wait_timers() {
        let c = TimerConfig::default();
        assert_eq!(c.timer_d(false), Duration::from_secs(32));
        assert_eq!(c.timer_i(false), Duration::from_secs(5));
        assert_eq!(c.timer_j(false), Duration::from_secs(32));
        assert_eq!(c.timer_k(false), Duration::from_secs(5));
        for d in [
            c.timer_d(true),
            c.timer_i(true),
            c.timer_j(true),
            c.timer_k(true),
        ] {
            assert_eq!(d, Duration::ZERO);
        }
    }
}
