//! Outbound campaigns (DOMAIN "Outbound campaigns"): a list of leads, a script, calling
//! windows, how often and how far apart a failed call is retried, and how the calls are
//! dialed: *preview* (the agent gets the next lead with the script, reads it, then calls or
//! skips) or *progressive* (the server calls the next lead for each joined agent as soon as
//! they are free: one call per agent, never more, so nobody answers to silence).
//!
//! This module is the policy, pure: what an attempt's end means for the lead, and when an
//! agent may be given the next call. The store keeps the campaigns and their leads
//! ([`crate::store::campaigns`]); the pacer ([`crate::api_campaigns`]) applies the policy
//! every second.

use std::fmt;

/// How a campaign's calls are dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Preview,
    Progressive,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "preview" => Some(Mode::Preview),
            "progressive" => Some(Mode::Progressive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Preview => "preview",
            Mode::Progressive => "progressive",
        }
    }
}

/// A campaign's life: made paused (leads are added, the script tuned, a pilot run), running,
/// paused again, finished for good.
pub const STATES: [&str; 3] = ["running", "paused", "finished"];

/// How one call attempt ended, from its call record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The customer answered.
    Connected,
    Busy,
    NoAnswer,
    /// The customer declined the call (603).
    Declined,
    /// The number does not exist (404, 484, 604): no use trying it again.
    BadNumber,
    /// The agent hung up before the customer answered.
    Abandoned,
    /// Anything else: the trunk did not answer, refused, the server was shutting down.
    Failed,
}

impl Outcome {
    /// From a call record: was it answered, and its end cause.
    pub fn of_call(answered: bool, end_cause: Option<&str>) -> Outcome {
        if answered {
            return Outcome::Connected;
        }
        match end_cause.unwrap_or_default() {
            "agent_busy" => Outcome::Busy,
            "no_answer" => Outcome::NoAnswer,
            "agent_rejected_603" => Outcome::Declined,
            "agent_rejected_404" | "agent_rejected_484" | "agent_rejected_604" => {
                Outcome::BadNumber
            }
            "caller_hangup" | "caller_cancelled" => Outcome::Abandoned,
            _ => Outcome::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Declined => "declined",
            Outcome::BadNumber => "bad_number",
            Outcome::Abandoned => "abandoned",
            Outcome::Failed => "failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What becomes of a lead after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Reached: the agent's disposition is the result.
    Reached,
    /// Tried again from this time on.
    RetryAt(i64),
    /// No more tries: the retries are used up, or the number is wrong.
    Exhausted,
}

/// A campaign's retry rule: a failed call (busy, no answer, declined, failed) is tried
/// again `retries` times, `spacing_ms` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub retries: u32,
    pub spacing_ms: i64,
}

impl Retry {
    /// After the `attempts`-th attempt (1 for the first) ended at `now` with `outcome`.
    pub fn after(&self, outcome: Outcome, attempts: u32, now: i64) -> Step {
        match outcome {
            Outcome::Connected => Step::Reached,
            Outcome::BadNumber => Step::Exhausted,
            _ if attempts > self.retries => Step::Exhausted,
            _ => Step::RetryAt(now.saturating_add(self.spacing_ms)),
        }
    }
}

/// What the pacer knows of a joined agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentView {
    /// Available in the ACD (not on break, not in wrap-up, logged in).
    pub available: bool,
    /// Lines taken (a ringing offer, a queue call, a direct or placed call).
    pub lines_in_use: usize,
    /// Their console's phone is up.
    pub phone_up: bool,
    /// A lead of a campaign is offered to them or being called.
    pub has_campaign_lead: bool,
    /// A campaign call they had with a customer still waits for its result code.
    pub owes_result: bool,
    /// When their last campaign call ended (ms), if one did.
    pub last_ended_ms: Option<i64>,
}

/// A breath between two progressive calls: the agent sees the last call end before the
/// next one rings out.
pub const PAUSE_MS: i64 = 3_000;

/// May the pacer place the next call for this agent at `now`?
pub fn may_dial_next(a: &AgentView, now: i64) -> bool {
    a.available
        && a.lines_in_use == 0
        && a.phone_up
        && !a.has_campaign_lead
        && !a.owes_result
        && a.last_ended_ms.is_none_or(|t| now - t >= PAUSE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_records_map_to_outcomes() {
        assert_eq!(
            Outcome::of_call(true, Some("agent_hangup")),
            Outcome::Connected
        );
        assert_eq!(Outcome::of_call(false, Some("agent_busy")), Outcome::Busy);
        assert_eq!(
            Outcome::of_call(false, Some("no_answer")),
            Outcome::NoAnswer
        );
        assert_eq!(
            Outcome::of_call(false, Some("agent_rejected_603")),
            Outcome::Declined
        );
        assert_eq!(
            Outcome::of_call(false, Some("agent_rejected_404")),
            Outcome::BadNumber
        );
        assert_eq!(
            Outcome::of_call(false, Some("caller_hangup")),
            Outcome::Abandoned
        );
        assert_eq!(
            Outcome::of_call(false, Some("agent_unreachable")),
            Outcome::Failed
        );
        assert_eq!(Outcome::of_call(false, None), Outcome::Failed);
    }

    #[test]
    fn failed_calls_are_retried_as_often_and_as_far_apart_as_configured() {
        let r = Retry {
            retries: 2,
            spacing_ms: 3_600_000,
        };
        assert_eq!(r.after(Outcome::Busy, 1, 1000), Step::RetryAt(3_601_000));
        assert_eq!(r.after(Outcome::NoAnswer, 2, 0), Step::RetryAt(3_600_000));
        assert_eq!(r.after(Outcome::NoAnswer, 3, 0), Step::Exhausted);
        assert_eq!(r.after(Outcome::Connected, 3, 0), Step::Reached);
        assert_eq!(r.after(Outcome::BadNumber, 1, 0), Step::Exhausted);
        let once = Retry {
            retries: 0,
            spacing_ms: 0,
        };
        assert_eq!(once.after(Outcome::Failed, 1, 0), Step::Exhausted);
    }

    #[test]
    fn a_progressive_call_goes_to_a_free_agent_only() {
        let free = AgentView {
            available: true,
            phone_up: true,
            ..AgentView::default()
        };
        assert!(may_dial_next(&free, 0));
        for busy in [
            AgentView {
                available: false,
                ..free
            },
            AgentView {
                lines_in_use: 1,
                ..free
            },
            AgentView {
                phone_up: false,
                ..free
            },
            AgentView {
                has_campaign_lead: true,
                ..free
            },
            AgentView {
                owes_result: true,
                ..free
            },
        ] {
            assert!(!may_dial_next(&busy, 0), "{busy:?}");
        }
        let just_ended = AgentView {
            last_ended_ms: Some(10_000),
            ..free
        };
        assert!(!may_dial_next(&just_ended, 10_000 + PAUSE_MS - 1));
        assert!(may_dial_next(&just_ended, 10_000 + PAUSE_MS));
    }
}
