//! The ACD in virtual time: strategies, priorities, ring-no-answer, wrap-up, overflow,
//! widening, announcements, reachability, lines, reconfiguration and the statistics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;

const S: Duration = Duration::from_secs(1);

pub(super) fn agent(id: &str, skills: &[(&str, u8)], lines: usize) -> AgentSpec {
    AgentSpec {
        id: id.to_string(),
        skills: skills
            .iter()
            .map(|(s, l)| (s.to_string(), *l))
            .collect::<BTreeMap<_, _>>(),
        lines,
    }
}

/// A queue with no wrap-up, so agents come back at once unless a test says otherwise.
fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        strategy,
        ring_timeout: 15 * S,
        wrap_up: Duration::ZERO,
        ..QueueConfig::new(name)
    }
}

struct H {
    acd: Acd,
    now: Instant,
    t0: Instant,
}

impl H {
    fn new(queues: Vec<QueueConfig>, agents: Vec<AgentSpec>) -> H {
        let config = AcdConfig {
            queues,
            agents,
            seed: 7,
        };
        config.validate().expect("test config is valid");
        // Far enough from the clock's origin that tests may look back in time.
        let now = Instant::now() + 3600 * S;
        H {
            acd: Acd::new(config),
            now,
            t0: now,
        }
    }

    fn drain(&mut self) -> Vec<AcdAction> {
        self.acd.invariants().expect("invariants hold");
        std::iter::from_fn(|| self.acd.poll_action()).collect()
    }

    fn ev(&mut self, e: AcdEvent) -> Vec<AcdAction> {
        self.acd.handle(e, self.now);
        self.drain()
    }

    /// Moves the clock on by `d`, running every timer on the way at its own time.
    fn advance(&mut self, d: Duration) -> Vec<AcdAction> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.acd.poll_timeout().filter(|&at| at <= end) {
            self.now = at.max(self.now);
            self.acd.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        out
    }

    /// The agents' endpoints connect and they log in.
    fn login(&mut self, agents: &[&str]) -> Vec<AcdAction> {
        let mut out = Vec::new();
        for a in agents {
            out.extend(self.ev(AcdEvent::AgentReachable {
                agent: a.to_string(),
                reachable: true,
            }));
            out.extend(self.ev(AcdEvent::AgentLogin {
                agent: a.to_string(),
            }));
        }
        out
    }

    fn queue_call(&mut self, call: u64, queue: &str, priority: u8) -> Vec<AcdAction> {
        self.ev(AcdEvent::CallQueued {
            call: CallRef(call),
            queue: queue.into(),
            priority,
            arrived: self.now,
            caller: format!("+1555{call}"),
        })
    }

    fn answer(&mut self, call: u64, agent: &str) -> Vec<AcdAction> {
        self.ev(AcdEvent::OfferAnswered {
            call: CallRef(call),
            agent: agent.into(),
        })
    }

    fn end(&mut self, call: u64, agent: &str) -> Vec<AcdAction> {
        self.ev(AcdEvent::CallEnded {
            call: CallRef(call),
            agent: agent.into(),
        })
    }

    fn state(&self, agent: &str) -> AgentState {
        self.acd.agent_state(agent).expect("known agent").state
    }
}

fn offers(actions: &[AcdAction]) -> Vec<(u64, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            AcdAction::Offer { call, agent, .. } => Some((call.0, agent.clone())),
            _ => None,
        })
        .collect()
}

fn offered(call: u64, agent: &str) -> Vec<(u64, String)> {
    vec![(call, agent.to_string())]
}

fn cancels(actions: &[AcdAction]) -> Vec<(u64, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            AcdAction::CancelOffer { call, agent } => Some((call.0, agent.clone())),
            _ => None,
        })
        .collect()
}

fn overflows(actions: &[AcdAction]) -> Vec<(u64, OverflowTarget, OverflowReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            AcdAction::Overflow {
                call,
                target,
                reason,
            } => Some((call.0, target.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn kinds(actions: &[AcdAction]) -> Vec<QueueEventKind> {
    actions
        .iter()
        .filter_map(|a| match a {
            AcdAction::Event(e) => Some(e.kind.clone()),
            _ => None,
        })
        .collect()
}

fn leaves(actions: &[AcdAction]) -> Vec<(u64, String, LeaveReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            AcdAction::Event(QueueEvent {
                call: Some(call),
                queue: Some(queue),
                kind: QueueEventKind::Leave { reason, .. },
                ..
            }) => Some((call.0, queue.clone(), *reason)),
            _ => None,
        })
        .collect()
}

/// Answers and ends `call` at once, leaving the agent available again (no wrap-up).
fn handle_call(h: &mut H, call: u64, agent: &str) {
    h.answer(call, agent);
    h.advance(S);
    h.end(call, agent);
}

#[test]
fn longest_idle_offers_the_agent_free_longest() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
            agent("c", &[("sales", 1)], 1),
        ],
    );
    for a in ["b", "c", "a"] {
        h.login(&[a]);
        h.advance(S);
    }
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "b"));
    handle_call(&mut h, 1, "b");
    // b just finished: c has been idle longest now, then a.
    assert_eq!(offers(&h.queue_call(2, "sales", 0)), offered(2, "c"));
    assert_eq!(offers(&h.queue_call(3, "sales", 0)), offered(3, "a"));
}

#[test]
fn ring_all_rings_every_free_agent_and_the_first_answer_wins() {
    let mut h = H::new(
        vec![queue("sales", Strategy::RingAll)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
            agent("c", &[("sales", 1)], 1),
        ],
    );
    h.login(&["a", "b", "c"]);
    let out = h.queue_call(1, "sales", 0);
    let mut rung: Vec<String> = offers(&out).into_iter().map(|(_, a)| a).collect();
    rung.sort();
    assert_eq!(rung, ["a", "b", "c"]);
    let out = h.answer(1, "b");
    let mut cancelled = cancels(&out);
    cancelled.sort();
    assert_eq!(cancelled, [(1, "a".into()), (1, "c".into())]);
    assert_eq!(leaves(&out), [(1, "sales".into(), LeaveReason::Answered)]);
    // a's answer crossed the cancel: ignored, a stays available, b keeps the call.
    let out = h.answer(1, "a");
    assert!(kinds(&out).is_empty(), "{out:?}");
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(h.state("b"), AgentState::OnCall);
}

#[test]
fn round_robin_goes_round_in_configuration_order() {
    let mut h = H::new(
        vec![queue("sales", Strategy::RoundRobin)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
            agent("c", &[("sales", 1)], 1),
        ],
    );
    h.login(&["c", "b", "a"]);
    let mut got = Vec::new();
    for call in 1..=5 {
        let out = h.queue_call(call, "sales", 0);
        let (_, a) = offers(&out).pop().expect("an offer");
        handle_call(&mut h, call, &a);
        got.push(a);
    }
    assert_eq!(got, ["a", "b", "c", "a", "b"]);
}

#[test]
fn fewest_calls_prefers_the_least_busy_agent_until_the_daily_reset() {
    let mut h = H::new(
        vec![queue("sales", Strategy::FewestCalls)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
        ],
    );
    h.login(&["a"]);
    for call in 1..=2 {
        assert_eq!(offers(&h.queue_call(call, "sales", 0)), offered(call, "a"));
        handle_call(&mut h, call, "a");
    }
    h.advance(S);
    h.login(&["b"]);
    h.advance(S);
    // a has been idle longer but answered 2 calls today, b none.
    assert_eq!(offers(&h.queue_call(3, "sales", 0)), offered(3, "b"));
    handle_call(&mut h, 3, "b");
    assert_eq!(h.acd.agent_state("a").unwrap().answered_today, 2);
    h.acd.reset_daily_counts();
    assert_eq!(h.acd.agent_state("a").unwrap().answered_today, 0);
    // A new day: equal counts, so the longest idle (a) gets the call.
    assert_eq!(offers(&h.queue_call(4, "sales", 0)), offered(4, "a"));
}

#[test]
fn top_down_offers_the_highest_skill_level_first() {
    let mut h = H::new(
        vec![queue("sales", Strategy::TopDown)],
        vec![
            agent("a", &[("sales", 3)], 1),
            agent("b", &[("sales", 9)], 1),
            agent("c", &[("sales", 5)], 1),
        ],
    );
    h.login(&["a", "b", "c"]);
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "b"));
    assert_eq!(offers(&h.queue_call(2, "sales", 0)), offered(2, "c"));
    assert_eq!(offers(&h.queue_call(3, "sales", 0)), offered(3, "a"));
}

#[test]
fn random_is_repeatable_with_a_seed_and_picks_only_free_agents() {
    let run = |seed: u64| {
        let config = AcdConfig {
            queues: vec![queue("sales", Strategy::Random)],
            agents: (0..6)
                .map(|i| agent(&format!("a{i}"), &[("sales", 1)], 1))
                .collect(),
            seed,
        };
        let mut acd = Acd::new(config);
        let mut now = Instant::now();
        for i in 0..6 {
            acd.handle(
                AcdEvent::AgentReachable {
                    agent: format!("a{i}"),
                    reachable: true,
                },
                now,
            );
            acd.handle(
                AcdEvent::AgentLogin {
                    agent: format!("a{i}"),
                },
                now,
            );
        }
        let mut picks = Vec::new();
        for call in 0..30 {
            acd.handle(
                AcdEvent::CallQueued {
                    call: CallRef(call),
                    queue: "sales".into(),
                    priority: 0,
                    arrived: now,
                    caller: String::new(),
                },
                now,
            );
            let got: Vec<AcdAction> = std::iter::from_fn(|| acd.poll_action()).collect();
            let (_, agent) = offers(&got).pop().expect("a free agent is offered");
            // Reject it: the agent stays free for the next call.
            acd.handle(
                AcdEvent::OfferFailed {
                    call: CallRef(call),
                    agent: agent.clone(),
                    reason: OfferFailure::Rejected,
                },
                now,
            );
            acd.handle(
                AcdEvent::CallAbandoned {
                    call: CallRef(call),
                },
                now,
            );
            while acd.poll_action().is_some() {}
            now += S;
            picks.push(agent);
        }
        picks
    };
    let first = run(1);
    assert_eq!(first, run(1));
    assert_ne!(first, run(2));
    let distinct: std::collections::HashSet<&String> = first.iter().collect();
    assert!(distinct.len() > 1, "random spreads calls: {first:?}");
}

#[test]
fn higher_priority_and_earlier_arrival_are_served_first() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
        ],
    );
    h.login(&["a", "b"]);
    h.ev(AcdEvent::AgentBreak {
        agent: "a".into(),
        reason: "lunch".into(),
    });
    h.ev(AcdEvent::AgentBreak {
        agent: "b".into(),
        reason: "lunch".into(),
    });
    h.queue_call(1, "sales", 0);
    h.advance(S);
    h.queue_call(2, "sales", 5);
    h.advance(S);
    // Arrived before call 1 elsewhere (e.g. in another queue), same priority as call 1.
    h.ev(AcdEvent::CallQueued {
        call: CallRef(3),
        queue: "sales".into(),
        priority: 0,
        arrived: h.t0 - 10 * S,
        caller: String::new(),
    });
    let order: Vec<u64> = h
        .acd
        .queue_snapshot("sales")
        .unwrap()
        .waiting
        .iter()
        .map(|w| w.call.0)
        .collect();
    assert_eq!(order, [2, 3, 1]);
    let out = h.ev(AcdEvent::AgentReady { agent: "a".into() });
    assert_eq!(offers(&out), offered(2, "a"));
    let out = h.ev(AcdEvent::AgentReady { agent: "b".into() });
    assert_eq!(offers(&out), offered(3, "b"));
}

#[test]
fn ring_no_answer_cancels_and_offers_the_next_agent() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
        ],
    );
    h.login(&["a", "b"]);
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "a"));
    assert!(h.advance(15 * S - Duration::from_millis(1)).is_empty());
    let out = h.advance(Duration::from_millis(1));
    assert_eq!(cancels(&out), offered(1, "a"));
    assert!(kinds(&out).contains(&QueueEventKind::RingNoAnswer));
    // a is still the longest idle, but already missed this caller.
    assert_eq!(offers(&out), offered(1, "b"));
    let a = h.acd.agent_state("a").unwrap();
    assert_eq!((a.state, a.misses_in_row), (AgentState::Available, 1));
    // b refuses: nobody fresh is left, so a gets the caller again, after the retry delay
    // (a phone refusing at once is not rung again at once, in a loop).
    let out = h.ev(AcdEvent::OfferFailed {
        call: CallRef(1),
        agent: "b".into(),
        reason: OfferFailure::Rejected,
    });
    assert!(offers(&out).is_empty());
    assert_eq!(h.acd.agent_state("b").unwrap().misses_in_row, 0);
    assert!(
        h.advance(RETRY_AFTER - Duration::from_millis(1))
            .iter()
            .all(|a| !matches!(a, AcdAction::Offer { .. }))
    );
    let out = h.advance(Duration::from_millis(1));
    assert_eq!(offers(&out), offered(1, "a"));
}

#[test]
fn the_retry_delay_is_the_queues() {
    let mut q = queue("sales", Strategy::LongestIdle);
    q.retry = Duration::from_secs(1);
    let mut h = H::new(vec![q], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "a"));
    let out = h.ev(AcdEvent::OfferFailed {
        call: CallRef(1),
        agent: "a".into(),
        reason: OfferFailure::Busy,
    });
    assert!(offers(&out).is_empty());
    assert!(offers(&h.advance(Duration::from_millis(999))).is_empty());
    assert_eq!(
        offers(&h.advance(Duration::from_millis(1))),
        offered(1, "a")
    );
}

#[test]
fn misses_in_a_row_put_the_agent_on_break_no_answer() {
    let mut q = queue("sales", Strategy::LongestIdle);
    q.no_answer_break_after = 2;
    let mut h = H::new(vec![q], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "a"));
    assert!(offers(&h.advance(15 * S)).is_empty(), "not at once");
    let out = h.advance(RETRY_AFTER);
    assert_eq!(
        offers(&out),
        offered(1, "a"),
        "the only agent is tried again after the retry delay"
    );
    // The endpoint itself gives up the second time: a miss too.
    let out = h.ev(AcdEvent::OfferFailed {
        call: CallRef(1),
        agent: "a".into(),
        reason: OfferFailure::NoAnswer,
    });
    assert!(offers(&out).is_empty());
    assert_eq!(
        h.state("a"),
        AgentState::Break {
            reason: NO_ANSWER_BREAK.into()
        }
    );
    assert!(kinds(&out).contains(&QueueEventKind::AgentState {
        state: AgentState::Break {
            reason: "no answer".into()
        }
    }));
    // Back from the break: the caller a missed comes to a again once the retry delay of
    // that miss has passed.
    let out = h.ev(AcdEvent::AgentReady { agent: "a".into() });
    assert!(offers(&out).is_empty());
    let out = h.advance(RETRY_AFTER);
    assert_eq!(offers(&out), offered(1, "a"));
    assert_eq!(h.acd.agent_state("a").unwrap().misses_in_row, 0);
    // An answer resets the count as well.
    h.answer(1, "a");
    assert_eq!(h.acd.agent_state("a").unwrap().misses_in_row, 0);
}

#[test]
fn wrap_up_holds_the_agent_for_the_queue_time_or_until_ready() {
    let mut q = queue("sales", Strategy::LongestIdle);
    q.wrap_up = 30 * S;
    let mut h = H::new(vec![q], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    h.queue_call(1, "sales", 0);
    h.answer(1, "a");
    h.advance(60 * S);
    h.queue_call(2, "sales", 0);
    let out = h.end(1, "a");
    assert_eq!(h.state("a"), AgentState::WrapUp);
    assert!(offers(&out).is_empty());
    assert_eq!(
        h.acd.agent_state("a").unwrap().wrap_up_until,
        Some(h.now + 30 * S)
    );
    assert!(offers(&h.advance(29 * S)).is_empty());
    let out = h.advance(S);
    assert_eq!(offers(&out), offered(2, "a"));
    // Ready ends the next wrap-up early.
    h.answer(2, "a");
    h.end(2, "a");
    h.queue_call(3, "sales", 0);
    h.advance(5 * S);
    let out = h.ev(AcdEvent::AgentReady { agent: "a".into() });
    assert_eq!(offers(&out), offered(3, "a"));
    assert_eq!(
        h.acd.poll_timeout(),
        Some(h.now + 15 * S),
        "only the ring timer"
    );
}

#[test]
fn a_queue_with_result_codes_holds_the_wrap_up_until_the_disposition() {
    let mut q = queue("sales", Strategy::LongestIdle);
    q.wrap_up = 10 * S;
    q.dispositions = vec!["sale".into(), "callback".into()];
    let mut h = H::new(vec![q], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    h.queue_call(1, "sales", 0);
    h.answer(1, "a");
    h.end(1, "a");
    let owed = Some((CallRef(1), "sales".to_string()));
    assert_eq!(h.acd.agent_state("a").unwrap().owes_disposition, owed);
    // The wrap-up time passes, and asking to be ready does nothing: no offer.
    assert!(offers(&h.advance(60 * S)).is_empty());
    assert_eq!(h.state("a"), AgentState::WrapUp);
    assert!(offers(&h.ev(AcdEvent::AgentReady { agent: "a".into() })).is_empty());
    assert_eq!(h.state("a"), AgentState::WrapUp);
    // A break and a logout are allowed; logging back in is wrap-up again, still owed.
    h.ev(AcdEvent::AgentBreak {
        agent: "a".into(),
        reason: "coffee".into(),
    });
    assert!(offers(&h.ev(AcdEvent::AgentReady { agent: "a".into() })).is_empty());
    h.ev(AcdEvent::AgentLogout { agent: "a".into() });
    h.ev(AcdEvent::AgentLogin { agent: "a".into() });
    assert_eq!(h.state("a"), AgentState::WrapUp);
    assert!(offers(&h.queue_call(2, "sales", 0)).is_empty());
    // Another call's disposition does not count; this one's ends the wrap-up: offered.
    assert!(
        offers(&h.ev(AcdEvent::Disposed {
            call: CallRef(9),
            agent: "a".into()
        }))
        .is_empty()
    );
    let out = h.ev(AcdEvent::Disposed {
        call: CallRef(1),
        agent: "a".into(),
    });
    assert_eq!(offers(&out), offered(2, "a"));
    assert_eq!(h.acd.agent_state("a").unwrap().owes_disposition, None);

    // Recorded during the wrap-up time: the wrap-up runs its time out as usual.
    h.answer(2, "a");
    h.end(2, "a");
    h.queue_call(3, "sales", 0);
    h.ev(AcdEvent::Disposed {
        call: CallRef(2),
        agent: "a".into(),
    });
    assert_eq!(h.state("a"), AgentState::WrapUp);
    assert_eq!(offers(&h.advance(10 * S)), offered(3, "a"));
}

#[test]
fn a_break_asked_for_on_a_call_starts_after_wrap_up() {
    let mut q = queue("sales", Strategy::LongestIdle);
    q.wrap_up = 10 * S;
    let mut h = H::new(vec![q], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    h.queue_call(1, "sales", 0);
    h.answer(1, "a");
    h.ev(AcdEvent::AgentBreak {
        agent: "a".into(),
        reason: "coffee".into(),
    });
    assert_eq!(h.state("a"), AgentState::OnCall);
    h.end(1, "a");
    assert_eq!(h.state("a"), AgentState::WrapUp);
    h.advance(10 * S);
    assert_eq!(
        h.state("a"),
        AgentState::Break {
            reason: "coffee".into()
        }
    );
}

#[test]
fn max_wait_overflows_to_the_target_and_hangup_is_a_timeout() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.max_wait = Some(60 * S);
    sales.overflow = OverflowTarget::Voicemail("general".into());
    let mut support = queue("support", Strategy::LongestIdle);
    support.max_wait = Some(30 * S);
    let mut h = H::new(
        vec![sales, support],
        vec![agent("a", &[("sales", 1), ("support", 1)], 1)],
    );
    h.login(&["a"]);
    h.ev(AcdEvent::AgentBreak {
        agent: "a".into(),
        reason: "meeting".into(),
    });
    h.queue_call(1, "sales", 0);
    h.queue_call(2, "support", 0);
    let out = h.advance(30 * S);
    assert_eq!(
        overflows(&out),
        [(2, OverflowTarget::Hangup, OverflowReason::MaxWait)]
    );
    assert_eq!(leaves(&out), [(2, "support".into(), LeaveReason::Timeout)]);
    assert!(overflows(&h.advance(30 * S - Duration::from_millis(1))).is_empty());
    let out = h.advance(Duration::from_millis(1));
    assert_eq!(
        overflows(&out),
        [(
            1,
            OverflowTarget::Voicemail("general".into()),
            OverflowReason::MaxWait
        )]
    );
    assert_eq!(
        leaves(&out),
        [(
            1,
            "sales".into(),
            LeaveReason::Overflow(OverflowReason::MaxWait)
        )]
    );
    assert_eq!(h.acd.poll_timeout(), None);
}

#[test]
fn no_agent_logged_in_overflows_on_arrival_and_when_the_last_one_leaves() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.overflow = OverflowTarget::External("+4930123".into());
    let mut h = H::new(
        vec![sales],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
        ],
    );
    let out = h.queue_call(1, "sales", 0);
    assert_eq!(
        overflows(&out),
        [(
            1,
            OverflowTarget::External("+4930123".into()),
            OverflowReason::NoAgents
        )]
    );
    assert!(
        !kinds(&out)
            .iter()
            .any(|k| matches!(k, QueueEventKind::Enter { .. })),
        "a refused caller never entered"
    );
    h.login(&["a", "b"]);
    for a in ["a", "b"] {
        h.ev(AcdEvent::AgentBreak {
            agent: a.into(),
            reason: "training".into(),
        });
    }
    // On break still counts as logged in: the caller waits.
    assert!(overflows(&h.queue_call(2, "sales", 0)).is_empty());
    assert!(overflows(&h.ev(AcdEvent::AgentLogout { agent: "a".into() })).is_empty());
    let out = h.ev(AcdEvent::AgentLogout { agent: "b".into() });
    assert_eq!(overflows(&out).len(), 1);
    assert_eq!(
        leaves(&out),
        [(
            2,
            "sales".into(),
            LeaveReason::Overflow(OverflowReason::NoAgents)
        )]
    );
}

#[test]
fn a_full_queue_overflows_new_callers() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.max_length = Some(2);
    sales.overflow = OverflowTarget::Flow("busy-menu".into());
    let mut h = H::new(vec![sales], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    h.queue_call(1, "sales", 0); // offered to a, still waiting
    h.queue_call(2, "sales", 0);
    let out = h.queue_call(3, "sales", 0);
    assert_eq!(
        overflows(&out),
        [(
            3,
            OverflowTarget::Flow("busy-menu".into()),
            OverflowReason::QueueFull
        )]
    );
    assert!(kinds(&out).contains(&QueueEventKind::Refused {
        target: OverflowTarget::Flow("busy-menu".into()),
        reason: OverflowReason::QueueFull
    }));
    h.answer(1, "a");
    assert!(overflows(&h.queue_call(4, "sales", 0)).is_empty());
}

#[test]
fn overflow_into_another_queue_keeps_the_arrival_time() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.max_wait = Some(60 * S);
    sales.overflow = OverflowTarget::Queue("service".into());
    let service = queue("service", Strategy::LongestIdle);
    let mut h = H::new(
        vec![sales, service],
        vec![
            agent("s", &[("sales", 1)], 1),
            agent("v", &[("service", 1)], 1),
        ],
    );
    h.login(&["s", "v"]);
    for a in ["s", "v"] {
        h.ev(AcdEvent::AgentBreak {
            agent: a.into(),
            reason: "meeting".into(),
        });
    }
    h.queue_call(1, "sales", 0);
    h.advance(30 * S);
    h.queue_call(2, "service", 0);
    let out = h.advance(30 * S);
    assert!(
        overflows(&out).is_empty(),
        "queue overflow is internal: {out:?}"
    );
    assert!(out.contains(&AcdAction::Requeued {
        call: CallRef(1),
        from: "sales".into(),
        to: "service".into(),
        reason: OverflowReason::MaxWait
    }));
    assert!(kinds(&out).contains(&QueueEventKind::Enter {
        priority: 0,
        arrived: h.t0,
        caller: "+15551".into()
    }));
    let snap = h.acd.queue_snapshot("service").unwrap();
    let order: Vec<u64> = snap.waiting.iter().map(|w| w.call.0).collect();
    assert_eq!(order, [1, 2], "the moved caller is not sent to the back");
    let out = h.ev(AcdEvent::AgentReady { agent: "v".into() });
    assert_eq!(offers(&out), offered(1, "v"));
}

#[test]
fn widening_adds_the_second_skill_after_t_without_moving_the_caller() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.widen = Some(Widen {
        after: 30 * S,
        skill: "service".into(),
    });
    let mut h = H::new(
        vec![sales],
        vec![
            agent("s", &[("sales", 1)], 1),
            agent("v", &[("service", 1)], 1),
        ],
    );
    h.login(&["s", "v"]);
    h.ev(AcdEvent::AgentBreak {
        agent: "s".into(),
        reason: "meeting".into(),
    });
    h.queue_call(1, "sales", 0);
    assert!(offers(&h.advance(30 * S - Duration::from_millis(1))).is_empty());
    let out = h.advance(Duration::from_millis(1));
    assert_eq!(offers(&out), offered(1, "v"));
    assert!(leaves(&out).is_empty(), "still in sales");
    assert_eq!(h.acd.queue_snapshot("sales").unwrap().waiting.len(), 1);
    let out = h.answer(1, "v");
    assert_eq!(leaves(&out), [(1, "sales".into(), LeaveReason::Answered)]);
    // The next caller is not widened yet: the free service agent is not offered it.
    h.end(1, "v");
    assert!(offers(&h.queue_call(2, "sales", 0)).is_empty());
}

#[test]
fn announcements_come_on_entry_and_every_n_seconds_with_expected_wait() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.announce_every = Some(30 * S);
    sales.wrap_up = 20 * S;
    let mut h = H::new(vec![sales], vec![agent("a", &[("sales", 1)], 1)]);
    h.login(&["a"]);
    let out = h.queue_call(1, "sales", 0);
    assert_eq!(offers(&out), offered(1, "a"));
    // Call 1 rings at once: no announcement for a caller about to be connected.
    let out = h.advance(Duration::ZERO);
    assert!(!out.iter().any(|a| matches!(a, AcdAction::Announce { .. })));
    h.answer(1, "a");
    h.advance(100 * S);
    h.end(1, "a"); // handling time 100 s talk + 20 s wrap-up
    h.queue_call(2, "sales", 0);
    h.queue_call(3, "sales", 0);
    let announced = |out: Vec<AcdAction>| -> Vec<(u64, usize, Option<Duration>)> {
        out.into_iter()
            .filter_map(|a| match a {
                AcdAction::Announce {
                    call,
                    position,
                    expected_wait,
                } => Some((call.0, position, expected_wait)),
                _ => None,
            })
            .collect()
    };
    // On entry: one agent staffs the queue (in wrap-up), handling time 100 s + 20 s.
    let two_min = Some(120 * S);
    assert_eq!(
        announced(h.advance(Duration::ZERO)),
        [(2, 1, two_min), (3, 2, Some(240 * S))]
    );
    // Wrap-up ends at +20 s and call 2 is offered; a answers at +25 s.
    let out = h.advance(25 * S);
    assert_eq!(offers(&out), offered(2, "a"));
    assert!(announced(out).is_empty());
    h.answer(2, "a");
    // Call 3 is next now; every 30 s from its entry (+30, +60, +90).
    assert_eq!(announced(h.advance(70 * S)), [(3, 1, two_min); 3]);
}

#[test]
fn an_unreachable_agent_is_never_offered_a_call() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
        ],
    );
    h.login(&["a", "b"]);
    h.ev(AcdEvent::AgentReachable {
        agent: "a".into(),
        reachable: false,
    });
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "b"));
    assert!(offers(&h.queue_call(2, "sales", 0)).is_empty());
    assert_eq!(h.acd.queue_snapshot("sales").unwrap().agents_unreachable, 1);
    // b's browser closes while ringing: the offer is withdrawn, no miss counted.
    let out = h.ev(AcdEvent::AgentReachable {
        agent: "b".into(),
        reachable: false,
    });
    assert_eq!(cancels(&out), offered(1, "b"));
    assert!(offers(&out).is_empty());
    assert_eq!(h.acd.agent_state("b").unwrap().misses_in_row, 0);
    let out = h.ev(AcdEvent::AgentReachable {
        agent: "a".into(),
        reachable: true,
    });
    assert_eq!(offers(&out), offered(1, "a"));
}

#[test]
fn an_agent_whose_endpoint_was_never_reported_is_not_offered() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![agent("a", &[("sales", 1)], 1)],
    );
    h.ev(AcdEvent::AgentLogin { agent: "a".into() });
    assert!(!h.acd.agent_state("a").unwrap().reachable);
    assert!(offers(&h.queue_call(1, "sales", 0)).is_empty());
    let out = h.ev(AcdEvent::AgentReachable {
        agent: "a".into(),
        reachable: true,
    });
    assert_eq!(offers(&out), offered(1, "a"));
}

#[test]
fn direct_calls_take_lines_and_a_queue_call_needs_a_free_one() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![
            agent("one", &[("sales", 1)], 1),
            agent("two", &[("sales", 1)], 2),
        ],
    );
    h.login(&["one", "two"]);
    for a in ["one", "two"] {
        h.ev(AcdEvent::DirectCallStarted { agent: a.into() });
    }
    assert_eq!(h.state("two"), AgentState::Available);
    assert_eq!(offers(&h.queue_call(1, "sales", 0)), offered(1, "two"));
    let two = h.acd.agent_state("two").unwrap();
    assert_eq!((two.lines_in_use, two.lines), (2, 2));
    assert!(offers(&h.queue_call(2, "sales", 0)).is_empty());
    let out = h.ev(AcdEvent::DirectCallEnded {
        agent: "one".into(),
    });
    assert_eq!(offers(&out), offered(2, "one"));
    // Ends that were never started do not underflow.
    h.ev(AcdEvent::DirectCallEnded {
        agent: "one".into(),
    });
    h.ev(AcdEvent::DirectCallEnded {
        agent: "one".into(),
    });
    assert_eq!(h.acd.agent_state("one").unwrap().direct_calls, 0);
}

#[test]
fn logout_while_ringing_moves_the_caller_on_without_a_miss() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![
            agent("a", &[("sales", 1)], 1),
            agent("b", &[("sales", 1)], 1),
        ],
    );
    h.login(&["a", "b"]);
    h.queue_call(1, "sales", 0);
    let out = h.ev(AcdEvent::AgentLogout { agent: "a".into() });
    assert_eq!(cancels(&out), offered(1, "a"));
    assert_eq!(offers(&out), offered(1, "b"));
    assert_eq!(h.state("a"), AgentState::LoggedOut);
    assert_eq!(h.acd.agent_state("a").unwrap().misses_in_row, 0);
    // A call that outlives a logout ends without bringing the agent back.
    h.answer(1, "b");
    h.ev(AcdEvent::AgentLogout { agent: "b".into() });
    h.end(1, "b");
    assert_eq!(h.state("b"), AgentState::LoggedOut);
}

#[test]
fn abandon_while_ringing_cancels_the_offer_and_frees_the_agent() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![agent("a", &[("sales", 1)], 1)],
    );
    h.login(&["a"]);
    h.queue_call(1, "sales", 0);
    h.advance(4 * S);
    let out = h.ev(AcdEvent::CallAbandoned { call: CallRef(1) });
    assert_eq!(cancels(&out), offered(1, "a"));
    assert!(kinds(&out).contains(&QueueEventKind::Abandon { waited: 4 * S }));
    assert_eq!(leaves(&out), [(1, "sales".into(), LeaveReason::Abandoned)]);
    assert_eq!(h.state("a"), AgentState::Available);
    assert_eq!(
        h.acd.poll_timeout(),
        None,
        "the ring timer went with the offer"
    );
    // A second abandon, or one for an unknown call, changes nothing.
    assert!(
        h.ev(AcdEvent::CallAbandoned { call: CallRef(1) })
            .is_empty()
    );
}

#[test]
fn events_for_unknown_agents_calls_and_queues_are_harmless() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![agent("a", &[("sales", 1)], 1)],
    );
    for e in [
        AcdEvent::AgentLogin { agent: "zz".into() },
        AcdEvent::OfferAnswered {
            call: CallRef(9),
            agent: "a".into(),
        },
        AcdEvent::CallEnded {
            call: CallRef(9),
            agent: "a".into(),
        },
        AcdEvent::OfferRinging {
            call: CallRef(9),
            agent: "a".into(),
        },
        AcdEvent::AgentReady { agent: "a".into() },
    ] {
        assert!(h.ev(e).is_empty());
    }
    let out = h.queue_call(1, "nope", 0);
    assert_eq!(
        overflows(&out),
        [(1, OverflowTarget::Hangup, OverflowReason::UnknownQueue)]
    );
}

#[test]
fn reconfigure_keeps_live_calls_and_moves_callers_of_a_removed_queue() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.wrap_up = 30 * S;
    let mut promo = queue("promo", Strategy::LongestIdle);
    promo.overflow = OverflowTarget::Queue("sales".into());
    let agents = vec![
        agent("a", &[("sales", 1), ("promo", 1)], 1),
        agent("b", &[("sales", 1)], 1),
        agent("c", &[("sales", 1)], 1),
    ];
    let mut h = H::new(vec![sales.clone(), promo], agents.clone());
    h.login(&["a", "b", "c"]);
    h.queue_call(1, "sales", 0); // a
    h.answer(1, "a");
    h.queue_call(2, "sales", 0); // b rings
    h.queue_call(3, "sales", 0); // c rings
    h.ev(AcdEvent::AgentBreak {
        agent: "a".into(),
        reason: "x".into(),
    }); // pending: a is on call
    h.queue_call(4, "promo", 0); // waits: a is busy
    h.advance(5 * S);

    // c is removed, promo is removed, sales gets a max wait.
    let mut sales2 = sales.clone();
    sales2.max_wait = Some(100 * S);
    let config = AcdConfig {
        queues: vec![sales2],
        agents: agents[..2].to_vec(),
        seed: 7,
    };
    config.validate().unwrap();
    h.acd.reconfigure(config, h.now);
    let out = h.drain();
    assert_eq!(cancels(&out), offered(3, "c"));
    assert!(out.contains(&AcdAction::Requeued {
        call: CallRef(4),
        from: "promo".into(),
        to: "sales".into(),
        reason: OverflowReason::QueueRemoved
    }));
    assert_eq!(h.state("a"), AgentState::OnCall);
    assert_eq!(h.state("b"), AgentState::Ringing);
    assert_eq!(
        h.acd.agent_state("a").unwrap().pending_break,
        Some("x".into())
    );
    assert!(h.acd.agent_state("c").is_none());
    let waiting: Vec<u64> = h
        .acd
        .queue_snapshot("sales")
        .unwrap()
        .waiting
        .iter()
        .map(|w| w.call.0)
        .collect();
    assert_eq!(waiting, [2, 3, 4]);
    // b's offer keeps its original ring timer (15 s from its start, 5 s ago).
    let out = h.advance(10 * S);
    assert_eq!(cancels(&out), offered(2, "b"));
    // The new max wait counts from each caller's entry into sales.
    let out = h.advance(85 * S);
    let mut timed_out: Vec<u64> = overflows(&out).into_iter().map(|o| o.0).collect();
    timed_out.sort();
    assert_eq!(timed_out, [2, 3], "{out:?}");
    // a's call still ends into wrap-up and the pending break.
    h.end(1, "a");
    assert_eq!(h.state("a"), AgentState::WrapUp);
}

#[test]
fn stats_give_service_level_asa_and_abandon_rate_for_an_interval() {
    let t0 = Instant::now();
    let ev = |secs: u64, queue: &str, kind: QueueEventKind| QueueEvent {
        time: t0 + Duration::from_secs(secs),
        queue: Some(queue.into()),
        call: Some(CallRef(secs)),
        agent: None,
        kind,
    };
    let leave = |secs, reason, waited: u64| {
        ev(
            secs,
            "sales",
            QueueEventKind::Leave {
                reason,
                waited: Duration::from_secs(waited),
            },
        )
    };
    let events = vec![
        ev(
            1,
            "sales",
            QueueEventKind::Enter {
                priority: 0,
                arrived: t0,
                caller: String::new(),
            },
        ),
        leave(10, LeaveReason::Answered, 10),
        leave(20, LeaveReason::Answered, 30),
        leave(30, LeaveReason::Answered, 20),
        leave(40, LeaveReason::Abandoned, 5), // short abandon
        leave(50, LeaveReason::Abandoned, 40),
        leave(60, LeaveReason::Overflow(OverflowReason::MaxWait), 60),
        leave(70, LeaveReason::Timeout, 60),
        ev(
            80,
            "sales",
            QueueEventKind::Refused {
                target: OverflowTarget::Hangup,
                reason: OverflowReason::QueueFull,
            },
        ),
        // Outside the interval or another queue: not counted.
        leave(500, LeaveReason::Answered, 1),
        ev(
            15,
            "service",
            QueueEventKind::Leave {
                reason: LeaveReason::Answered,
                waited: S,
            },
        ),
    ];
    let s = queue_stats(&events, "sales", t0, t0 + 100 * S, 20 * S);
    assert_eq!(s.entered, 1);
    assert_eq!(s.refused, 1);
    assert_eq!((s.answered, s.answered_within), (3, 2));
    assert_eq!((s.abandoned, s.abandoned_within), (2, 1));
    assert_eq!((s.overflowed, s.timed_out), (1, 1));
    // 2 within 20 s of (7 left - 1 short abandon).
    assert_eq!(s.service_level, Some(2.0 / 6.0));
    assert_eq!(s.average_speed_of_answer, Some(20 * S));
    assert_eq!(s.abandon_rate, Some(2.0 / 7.0));
    assert_eq!(s.longest_wait, Some(60 * S));
    let empty = queue_stats(&events, "sales", t0 + 200 * S, t0 + 300 * S, 20 * S);
    assert_eq!(empty.service_level, None);
    assert_eq!(empty.average_speed_of_answer, None);
    assert_eq!(empty.abandon_rate, None);
}

#[test]
fn stats_from_a_live_engine_match_what_happened() {
    let mut h = H::new(
        vec![queue("sales", Strategy::LongestIdle)],
        vec![agent("a", &[("sales", 1)], 1)],
    );
    let mut events = Vec::new();
    let mut keep = |out: Vec<AcdAction>| {
        events.extend(out.into_iter().filter_map(|a| match a {
            AcdAction::Event(e) => Some(e),
            _ => None,
        }))
    };
    keep(h.login(&["a"]));
    keep(h.queue_call(1, "sales", 0));
    keep(h.queue_call(2, "sales", 0));
    keep(h.advance(8 * S));
    keep(h.answer(1, "a")); // after 8 s
    keep(h.advance(4 * S));
    keep(h.ev(AcdEvent::CallAbandoned { call: CallRef(2) })); // after 12 s
    let s = queue_stats(&events, "sales", h.t0, h.now + S, 10 * S);
    assert_eq!((s.entered, s.answered, s.abandoned), (2, 1, 1));
    assert_eq!(s.average_speed_of_answer, Some(8 * S));
    assert_eq!(s.service_level, Some(0.5));
    assert_eq!(s.abandon_rate, Some(0.5));
}

#[test]
fn config_validation_names_what_is_wrong() {
    let mut a = queue("a", Strategy::LongestIdle);
    a.overflow = OverflowTarget::Queue("nowhere".into());
    let e = AcdConfig {
        queues: vec![a.clone()],
        agents: vec![],
        seed: 0,
    }
    .validate()
    .unwrap_err();
    assert_eq!((e.queue.as_deref(), e.key), (Some("a"), "overflow"));
    assert!(e.to_string().contains("\"nowhere\""), "{e}");
    a.overflow = OverflowTarget::Queue("b".into());
    let mut b = queue("b", Strategy::LongestIdle);
    b.overflow = OverflowTarget::Queue("a".into());
    let e = AcdConfig {
        queues: vec![a, b],
        agents: vec![],
        seed: 0,
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("loop a -> b -> a"), "{e}");
}
