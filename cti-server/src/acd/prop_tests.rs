//! Property test: random sequences of callers arriving and abandoning, agents logging in and
//! out, taking breaks, losing their endpoint, answering, failing and hanging up, and time
//! passing. After every step the engine's own invariants hold, and the actions it emitted,
//! read from the outside, keep the promises of the module documentation.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::agent;
use super::{
    Acd, AcdAction, AcdConfig, AcdEvent, CallRef, LeaveReason, OfferFailure, OverflowTarget,
    QueueConfig, QueueEvent, QueueEventKind, Widen,
};

#[derive(Debug, Clone)]
enum Op {
    Queue { queue: usize, priority: u8 },
    Abandon(usize),
    Login(usize),
    Logout(usize),
    Ready(usize),
    Break(usize),
    Reachable(usize, bool),
    Ringing(usize),
    Answer(usize),
    Fail(usize, usize),
    End(usize),
    Direct(usize),
    DirectEnd(usize),
    Advance(u64),
    Reconfigure(bool),
}

const AGENTS: usize = 6;
const QUEUES: [&str; 3] = ["sales", "service", "vip"];

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    let a = 0..AGENTS;
    prop_oneof![
        4 => (0..QUEUES.len(), 0u8..3).prop_map(|(queue, priority)| Op::Queue { queue, priority }),
        1 => (0usize..64).prop_map(Op::Abandon),
        2 => a.clone().prop_map(Op::Login),
        1 => a.clone().prop_map(Op::Logout),
        2 => a.clone().prop_map(Op::Ready),
        1 => a.clone().prop_map(Op::Break),
        // Mostly endpoints connecting: agents start unreachable.
        2 => (a.clone(), proptest::bool::weighted(0.75)).prop_map(|(a, r)| Op::Reachable(a, r)),
        1 => (0usize..8).prop_map(Op::Ringing),
        3 => (0usize..8).prop_map(Op::Answer),
        1 => (0usize..8, 0usize..4).prop_map(|(i, r)| Op::Fail(i, r)),
        2 => (0usize..8).prop_map(Op::End),
        1 => a.clone().prop_map(Op::Direct),
        1 => a.prop_map(Op::DirectEnd),
        4 => (0u64..40).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Reconfigure),
    ]
}

fn config(first: super::Strategy, second_variant: bool) -> AcdConfig {
    let mut sales = QueueConfig::new("sales");
    sales.strategy = first;
    sales.ring_timeout = Duration::from_secs(10);
    sales.wrap_up = Duration::from_secs(5);
    sales.max_wait = Some(Duration::from_secs(60));
    sales.overflow = OverflowTarget::Queue("service".into());
    sales.no_answer_break_after = 2;
    sales.announce_every = Some(Duration::from_secs(20));
    let mut service = QueueConfig::new("service");
    service.strategy = super::Strategy::RingAll;
    service.max_length = Some(4);
    service.max_wait = Some(Duration::from_secs(90));
    service.overflow = OverflowTarget::Voicemail("general".into());
    service.widen = Some(Widen {
        after: Duration::from_secs(15),
        skill: "sales".into(),
    });
    let mut vip = QueueConfig::new("vip");
    vip.strategy = super::Strategy::Random;
    vip.max_wait = Some(Duration::from_secs(45));
    vip.overflow = OverflowTarget::Queue("sales".into());
    let mut queues = vec![sales, service, vip];
    let mut agents = vec![
        agent("a0", &[("sales", 5)], 1),
        agent("a1", &[("sales", 3), ("vip", 2)], 2),
        agent("a2", &[("service", 4)], 1),
        agent("a3", &[("service", 2), ("sales", 1)], 2),
        agent("a4", &[("vip", 9)], 1),
        agent("a5", &[("vip", 1), ("service", 1)], 3),
    ];
    if second_variant {
        // Admins edit: vip goes away, service rings one at a time, a5 leaves.
        queues.pop();
        queues[1].strategy = super::Strategy::TopDown;
        queues[0].ring_timeout = Duration::from_secs(5);
        agents.pop();
    }
    AcdConfig {
        queues,
        agents,
        seed: 3,
    }
}

/// What the outside world knows, built only from the actions.
#[derive(Default)]
struct World {
    /// Call → queue it is in now.
    in_queue: HashMap<CallRef, String>,
    /// Live offers (call, agent) in emission order.
    offers: Vec<(CallRef, String)>,
    /// Calls answered: each at most once.
    answered: HashSet<CallRef>,
    /// Queue calls agents are on.
    on_call: Vec<(CallRef, String)>,
    /// Calls that left the ACD (overflow to a non-queue target, answered, abandoned).
    gone: HashSet<CallRef>,
    reachable: HashMap<String, bool>,
}

impl World {
    fn absorb(&mut self, acd: &Acd, actions: Vec<AcdAction>) -> Result<(), TestCaseError> {
        for action in actions {
            match action {
                AcdAction::Offer { call, agent, .. } => {
                    prop_assert!(
                        self.reachable.get(&agent).copied().unwrap_or(false),
                        "offer to unreachable {agent}"
                    );
                    prop_assert!(
                        !self.offers.iter().any(|(_, a)| *a == agent),
                        "{agent} offered two calls"
                    );
                    prop_assert!(
                        self.in_queue.contains_key(&call),
                        "offer for {call:?} not in a queue"
                    );
                    self.offers.push((call, agent));
                }
                AcdAction::CancelOffer { call, agent } => {
                    let before = self.offers.len();
                    self.offers.retain(|o| *o != (call, agent.clone()));
                    prop_assert_eq!(before, self.offers.len() + 1, "cancel of no offer");
                }
                AcdAction::Overflow { call, .. } => {
                    prop_assert!(!self.in_queue.contains_key(&call));
                    self.gone.insert(call);
                }
                AcdAction::Event(QueueEvent {
                    call: Some(call),
                    queue: Some(queue),
                    kind,
                    ..
                }) => match kind {
                    QueueEventKind::Enter { .. } => {
                        prop_assert!(
                            self.in_queue.insert(call, queue.clone()).is_none(),
                            "{call:?} entered {queue} while in a queue"
                        );
                    }
                    QueueEventKind::Leave { reason, .. } => {
                        let was_in = self.in_queue.remove(&call);
                        prop_assert_eq!(
                            was_in.as_ref(),
                            Some(&queue),
                            "{:?} left {} without being in it ({:?})",
                            call,
                            queue,
                            reason
                        );
                        prop_assert!(
                            !self.offers.iter().any(|(c, _)| *c == call),
                            "{call:?} left with an offer still ringing"
                        );
                        if reason == LeaveReason::Answered {
                            prop_assert!(self.answered.insert(call), "answered twice");
                        }
                    }
                    QueueEventKind::Answer { .. } => {
                        prop_assert!(!self.answered.contains(&call));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        // Non-ring-all queues never ring one caller on two agents.
        for (call, queue) in &self.in_queue {
            let n = self.offers.iter().filter(|(c, _)| c == call).count();
            let ring_all = acd
                .queues
                .iter()
                .any(|q| q.cfg.name == *queue && q.cfg.strategy == super::Strategy::RingAll);
            prop_assert!(n <= 1 || ring_all, "{call:?} in {queue} rings {n} agents");
        }
        acd.invariants().map_err(TestCaseError::fail)?;
        Ok(())
    }
}

fn strategy() -> impl proptest::strategy::Strategy<Value = super::Strategy> {
    prop_oneof![
        Just(super::Strategy::LongestIdle),
        Just(super::Strategy::RoundRobin),
        Just(super::Strategy::FewestCalls),
        Just(super::Strategy::TopDown),
        Just(super::Strategy::Random),
        Just(super::Strategy::RingAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_over_random_event_sequences(
        first in strategy(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut acd = Acd::new(config(first, false));
        let t0 = Instant::now();
        let mut now = t0;
        let mut world = World::default();
        let mut next_call = 0u64;
        let agent_name = |i: usize| format!("a{i}");
        for op in ops {
            let ev = move |acd: &mut Acd, e: AcdEvent| acd.handle(e, now);
            match op {
                Op::Queue { queue, priority } => {
                    next_call += 1;
                    ev(&mut acd, AcdEvent::CallQueued {
                        call: CallRef(next_call),
                        queue: QUEUES[queue].into(),
                        priority,
                        arrived: now,
                        caller: String::new(),
                    });
                }
                Op::Abandon(i) => {
                    let mut calls: Vec<CallRef> = world.in_queue.keys().copied().collect();
                    calls.sort();
                    if let Some(&call) = calls.get(i % calls.len().max(1)) {
                        ev(&mut acd, AcdEvent::CallAbandoned { call });
                    }
                }
                Op::Login(a) => ev(&mut acd, AcdEvent::AgentLogin { agent: agent_name(a) }),
                Op::Logout(a) => ev(&mut acd, AcdEvent::AgentLogout { agent: agent_name(a) }),
                Op::Ready(a) => ev(&mut acd, AcdEvent::AgentReady { agent: agent_name(a) }),
                Op::Break(a) => ev(&mut acd, AcdEvent::AgentBreak {
                    agent: agent_name(a),
                    reason: "lunch".into(),
                }),
                Op::Reachable(a, reachable) => {
                    world.reachable.insert(agent_name(a), reachable);
                    ev(&mut acd, AcdEvent::AgentReachable { agent: agent_name(a), reachable });
                }
                Op::Ringing(i) => {
                    if let Some((call, agent)) = world.offers.get(i).cloned() {
                        ev(&mut acd, AcdEvent::OfferRinging { call, agent });
                    }
                }
                Op::Answer(i) => {
                    if let Some((call, agent)) = world.offers.get(i).cloned() {
                        world.offers.remove(i);
                        world.on_call.push((call, agent.clone()));
                        ev(&mut acd, AcdEvent::OfferAnswered { call, agent });
                    }
                }
                Op::Fail(i, r) => {
                    if let Some((call, agent)) = world.offers.get(i).cloned() {
                        world.offers.remove(i);
                        let reason = [
                            OfferFailure::Busy,
                            OfferFailure::Rejected,
                            OfferFailure::Unreachable,
                            OfferFailure::NoAnswer,
                        ][r];
                        ev(&mut acd, AcdEvent::OfferFailed { call, agent, reason });
                    }
                }
                Op::End(i) => {
                    if i < world.on_call.len() {
                        let (call, agent) = world.on_call.remove(i);
                        ev(&mut acd, AcdEvent::CallEnded { call, agent });
                    }
                }
                Op::Direct(a) => ev(&mut acd, AcdEvent::DirectCallStarted { agent: agent_name(a) }),
                Op::DirectEnd(a) => ev(&mut acd, AcdEvent::DirectCallEnded { agent: agent_name(a) }),
                Op::Advance(secs) => {
                    let end = now + Duration::from_secs(secs);
                    while let Some(at) = acd.poll_timeout().filter(|&at| at <= end) {
                        prop_assert!(at >= now, "timer in the past");
                        now = at;
                        acd.handle_timeout(now);
                        let out: Vec<AcdAction> = std::iter::from_fn(|| acd.poll_action()).collect();
                        world.absorb(&acd, out)?;
                    }
                    now = end;
                }
                Op::Reconfigure(variant) => {
                    acd.reconfigure(config(first, variant), now);
                    if variant {
                        // The removed agent's live call is no longer the ACD's to track.
                        world.on_call.retain(|(_, a)| a != "a5");
                        // Should it come back, it is a new agent, not yet reachable.
                        world.reachable.remove("a5");
                    }
                }
            }
            let out: Vec<AcdAction> = std::iter::from_fn(|| acd.poll_action()).collect();
            world.absorb(&acd, out)?;
            // Answered-and-ended agents are never left ringing without an offer (checked by
            // invariants()); every agent the world thinks rings really has that offer.
            for (call, agent) in &world.offers {
                let s = acd.agent_state(agent);
                prop_assert_eq!(s.as_ref().and_then(|s| s.offer), Some(*call), "{} offer", agent);
            }
        }
        // Everyone still waiting hangs up: every caller who entered has left exactly once.
        let mut calls: Vec<CallRef> = world.in_queue.keys().copied().collect();
        calls.sort();
        for call in calls {
            acd.handle(AcdEvent::CallAbandoned { call }, now);
            let out: Vec<AcdAction> = std::iter::from_fn(|| acd.poll_action()).collect();
            world.absorb(&acd, out)?;
        }
        prop_assert!(world.in_queue.is_empty());
        prop_assert!(world.offers.is_empty(), "offers left: {:?}", world.offers);
        prop_assert_eq!(acd.entered, acd.left);
    }
}
