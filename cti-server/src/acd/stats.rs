//! Queue figures for an interval, computed from the ACD's [`QueueEvent`]s alone (as the store
//! keeps them), so a report over any past interval gives the same answer as a live one.

use std::time::{Duration, Instant};

use super::{LeaveReason, QueueEvent, QueueEventKind};

/// One queue over one interval. Callers count in the interval in which they *left* the
/// queue (answered, abandoned, overflowed, timed out); `entered` and `refused` count events
/// in the interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    pub entered: usize,
    /// Callers turned away on arrival (queue full, no agent logged in).
    pub refused: usize,
    pub answered: usize,
    /// Answered within the service-level threshold.
    pub answered_within: usize,
    pub abandoned: usize,
    /// Abandoned within the threshold ("short abandons").
    pub abandoned_within: usize,
    /// Moved to their overflow target while waiting.
    pub overflowed: usize,
    /// Waited `max_wait` with hang-up as the overflow target.
    pub timed_out: usize,
    /// Answered within the threshold ÷ (callers who left − short abandons): a caller who hung
    /// up before the threshold could be met counts neither way. `None` without callers.
    pub service_level: Option<f64>,
    /// Average speed of answer: mean wait in the queue of the answered callers.
    pub average_speed_of_answer: Option<Duration>,
    /// Abandoned ÷ callers who left.
    pub abandon_rate: Option<f64>,
    /// Longest wait of any caller who left.
    pub longest_wait: Option<Duration>,
}

/// Figures of `queue` for events with `from <= time < to`; `threshold` is the service-level
/// target (e.g. 20 s: "80 % answered within 20 s").
pub fn queue_stats(
    events: &[QueueEvent],
    queue: &str,
    from: Instant,
    to: Instant,
    threshold: Duration,
) -> QueueStats {
    let mut s = QueueStats::default();
    let mut answer_wait = Duration::ZERO;
    for e in events {
        if e.queue.as_deref() != Some(queue) || e.time < from || e.time >= to {
            continue;
        }
        match &e.kind {
            QueueEventKind::Enter { .. } => s.entered += 1,
            QueueEventKind::Refused { .. } => s.refused += 1,
            QueueEventKind::Leave { reason, waited } => {
                let within = *waited <= threshold;
                match reason {
                    LeaveReason::Answered => {
                        s.answered += 1;
                        s.answered_within += usize::from(within);
                        answer_wait += *waited;
                    }
                    LeaveReason::Abandoned => {
                        s.abandoned += 1;
                        s.abandoned_within += usize::from(within);
                    }
                    LeaveReason::Overflow(_) => s.overflowed += 1,
                    LeaveReason::Timeout => s.timed_out += 1,
                }
                s.longest_wait = Some(s.longest_wait.map_or(*waited, |l| l.max(*waited)));
            }
            _ => {}
        }
    }
    let left = s.answered + s.abandoned + s.overflowed + s.timed_out;
    let counted = left - s.abandoned_within;
    s.service_level = (counted > 0).then(|| s.answered_within as f64 / counted as f64);
    s.average_speed_of_answer = u32::try_from(s.answered)
        .ok()
        .filter(|&n| n > 0)
        .map(|n| answer_wait / n);
    s.abandon_rate = (left > 0).then(|| s.abandoned as f64 / left as f64);
    s
}
