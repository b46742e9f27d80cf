//! ACD decision time with a full house: 1,000 callers waiting over two queues and 500 agents
//! all on calls. One iteration = one agent's call ends (no wrap-up, so they are available at
//! once) → the engine picks the best waiting caller and emits the offer. The agent then
//! answers and a new caller arrives (outside the timing), so every iteration sees the same
//! load. Before the criterion run, 20,000 such decisions are timed one by one and their
//! percentiles printed: the target is p99 < 10 ms.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use cti_server::acd::{
    Acd, AcdAction, AcdConfig, AcdEvent, AgentSpec, CallRef, QueueConfig, Strategy,
};

const AGENTS: usize = 500;
const CALLERS: u64 = 1_000;

struct Load {
    acd: Acd,
    now: Instant,
    /// Agent → the call they are on.
    on_call: Vec<CallRef>,
    next_call: u64,
    turn: usize,
}

fn agent_id(i: usize) -> String {
    format!("{}", 10_000 + i)
}

fn queue_of(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "sales"
    } else {
        "service"
    }
}

impl Load {
    fn new(strategy: Strategy) -> Load {
        let queue = |name: &str| QueueConfig {
            strategy,
            wrap_up: Duration::ZERO,
            ..QueueConfig::new(name)
        };
        let config = AcdConfig {
            queues: vec![queue("sales"), queue("service")],
            agents: (0..AGENTS)
                .map(|i| AgentSpec {
                    id: agent_id(i),
                    // Every fifth agent has both skills, so queues compete for them.
                    skills: if i.is_multiple_of(5) {
                        [("sales".to_string(), 5), ("service".to_string(), 3)].into()
                    } else {
                        [(queue_of(i).to_string(), (i % 9) as u8 + 1)].into()
                    },
                    lines: 2,
                })
                .collect(),
            seed: 1,
        };
        let mut load = Load {
            acd: Acd::new(config),
            now: Instant::now(),
            on_call: vec![CallRef(0); AGENTS],
            next_call: 0,
            turn: 0,
        };
        for i in 0..AGENTS {
            load.acd.handle(
                AcdEvent::AgentReachable {
                    agent: agent_id(i),
                    reachable: true,
                },
                load.now,
            );
            load.acd
                .handle(AcdEvent::AgentLogin { agent: agent_id(i) }, load.now);
        }
        // The first 500 callers are answered as they come (by the first agent offered: a
        // ring-all queue offers each to every free agent): everyone is on a call.
        for _ in 0..AGENTS {
            load.arrive();
            let offer = std::iter::from_fn(|| load.acd.poll_action()).find_map(|a| match a {
                AcdAction::Offer { call, agent, .. } => Some((call, agent)),
                _ => None,
            });
            let (call, agent) = offer.expect("a free agent is offered the caller");
            load.answer(call, &agent);
            while load.acd.poll_action().is_some() {}
        }
        for _ in 0..CALLERS {
            load.arrive();
        }
        while load.acd.poll_action().is_some() {}
        let waiting: usize = ["sales", "service"]
            .iter()
            .map(|q| load.acd.queue_snapshot(q).expect("queue").waiting.len())
            .sum();
        assert_eq!(waiting, CALLERS as usize, "1,000 callers wait");
        load
    }

    fn arrive(&mut self) {
        self.next_call += 1;
        self.now += Duration::from_millis(10);
        let queue = queue_of(self.next_call as usize);
        self.acd.handle(
            AcdEvent::CallQueued {
                call: CallRef(self.next_call),
                queue: queue.into(),
                priority: (self.next_call % 3) as u8,
                arrived: self.now,
                caller: String::new(),
            },
            self.now,
        );
    }

    fn answer(&mut self, call: CallRef, agent: &str) {
        let i: usize = agent.parse::<usize>().expect("numeric id") - 10_000;
        self.on_call[i] = call;
        self.acd.handle(
            AcdEvent::OfferAnswered {
                call,
                agent: agent.to_string(),
            },
            self.now,
        );
    }

    /// The timed part: an agent's call ends, the offer comes out.
    fn decide(&mut self) -> (CallRef, String) {
        let i = self.turn % AGENTS;
        self.acd.handle(
            AcdEvent::CallEnded {
                call: self.on_call[i],
                agent: agent_id(i),
            },
            self.now,
        );
        while let Some(a) = self.acd.poll_action() {
            if let AcdAction::Offer { call, agent, .. } = a {
                return (call, agent);
            }
        }
        panic!("no offer with 1,000 callers waiting");
    }

    /// Untimed: the offer is answered and a new caller keeps the queue at 1,000.
    fn restore(&mut self, (call, agent): (CallRef, String)) {
        self.answer(call, &agent);
        self.arrive();
        while self.acd.poll_action().is_some() {}
        self.turn += 1;
        self.now += Duration::from_millis(10);
    }
}

fn percentiles(strategy: Strategy) {
    let mut load = Load::new(strategy);
    let mut times: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            let offer = load.decide();
            let took = t.elapsed();
            load.restore(offer);
            took
        })
        .collect();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "acd {strategy:?}: agent available -> offer, 1,000 waiting / 500 agents: p50 {:?} p99 {:?} max {:?}",
        p(0.5),
        p(0.99),
        times[times.len() - 1]
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("acd");
    for strategy in [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::RingAll,
    ] {
        let mut load = Load::new(strategy);
        g.bench_function(format!("agent available -> offer ({strategy:?})"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let offer = load.decide();
                    total += t.elapsed();
                    load.restore(offer);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    for strategy in [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::RingAll,
    ] {
        percentiles(strategy);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
