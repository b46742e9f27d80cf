//! What the ACD is told: queues and agents as plain data, built from the application
//! configuration ([`AcdConfig::from_config`]) or directly by tests and the admin API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How a queue picks among the agents free to take its next caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The agent free for the longest time (since login, break end, or the end of their last
    /// queue call's wrap-up).
    #[default]
    LongestIdle,
    /// Every free agent of the skill rings at once; the first to answer takes the call.
    RingAll,
    /// The next free agent after the one offered last, in configuration order.
    RoundRobin,
    /// The agent who answered the fewest queue calls since start or the last
    /// [`Acd::reset_daily_counts`](super::Acd::reset_daily_counts); ties go to the longest idle.
    FewestCalls,
    /// The highest skill level first; ties in configuration order.
    TopDown,
    /// Uniformly at random, from the engine's seeded generator ([`AcdConfig::seed`]).
    Random,
}

/// Where a caller goes when a queue cannot keep them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OverflowTarget {
    /// Another queue; the ACD moves the caller itself and keeps their arrival time.
    Queue(String),
    /// One agent's extension, dialled directly by the integrator.
    Agent(String),
    /// A voicemail box.
    Voicemail(String),
    /// An IVR flow.
    Flow(String),
    /// An external number through the trunk.
    External(String),
    /// The caller is disconnected.
    #[default]
    Hangup,
}

/// Adds a second skill group's agents to a queue's callers who waited `after`, without
/// moving them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widen {
    pub after: Duration,
    pub skill: String,
}

/// One queue (skill group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    /// Agents holding this skill (any level) serve the queue.
    pub skill: String,
    pub strategy: Strategy,
    /// An offer not answered within this is cancelled and counts as a miss for the agent.
    pub ring_timeout: Duration,
    /// After a call from this queue ends, the agent is in wrap-up this long (zero: available).
    pub wrap_up: Duration,
    /// A caller who waited this long in this queue goes to `overflow`; `None`: no limit.
    pub max_wait: Option<Duration>,
    /// Callers beyond this many waiting go to `overflow` on arrival; `None`: no limit.
    pub max_length: Option<usize>,
    pub overflow: OverflowTarget,
    pub widen: Option<Widen>,
    /// Position and expected wait are announced on entry and then this often; `None`: never.
    pub announce_every: Option<Duration>,
    /// Misses in a row that put an agent on break with reason [`NO_ANSWER_BREAK`](super::NO_ANSWER_BREAK);
    /// zero: never.
    pub no_answer_break_after: u32,
    /// Priority the integrator gives callers it queues here without one of their own
    /// (the ACD itself uses the priority carried by [`AcdEvent::CallQueued`](super::AcdEvent::CallQueued)).
    pub default_priority: u8,
    /// Hold music the call actor plays to this queue's callers; not used by the ACD itself.
    pub hold_music: Option<PathBuf>,
    /// An agent whose offer of a caller failed is not offered that caller again before this
    /// (when nobody else is free; Asterisk's `retry`).
    pub retry: Duration,
    /// Result codes the agent picks one of after each call (the integrator checks them);
    /// when there are any, the wrap-up lasts until the call's disposition is recorded
    /// ([`AcdEvent::Disposed`](super::AcdEvent::Disposed)).
    pub dispositions: Vec<String>,
}

impl QueueConfig {
    /// A queue with the defaults of the configuration file: skill = name, longest idle,
    /// 20 s ring timeout, 10 s wrap-up, no limits, overflow to hang-up, break after 3 misses.
    pub fn new(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_string(),
            skill: name.to_string(),
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(DEFAULT_RING_TIMEOUT_S),
            wrap_up: Duration::from_secs(DEFAULT_WRAP_UP_S),
            max_wait: None,
            max_length: None,
            overflow: OverflowTarget::Hangup,
            widen: None,
            announce_every: None,
            no_answer_break_after: DEFAULT_NO_ANSWER_BREAK_AFTER,
            default_priority: 0,
            hold_music: None,
            retry: Duration::from_secs(DEFAULT_RETRY_S),
            dispositions: Vec::new(),
        }
    }
}

pub(crate) const DEFAULT_RING_TIMEOUT_S: u64 = 20;
pub(crate) const DEFAULT_WRAP_UP_S: u64 = 10;
pub(crate) const DEFAULT_RETRY_S: u64 = 5;
pub(crate) const DEFAULT_NO_ANSWER_BREAK_AFTER: u32 = 3;

/// One agent as the ACD sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// The agent's extension, the key of every agent event.
    pub id: String,
    /// Skill name → level (higher is more skilled; `top-down` offers the highest first).
    pub skills: BTreeMap<String, u8>,
    /// Calls the agent's endpoint carries at once (queue offers, queue calls and direct calls).
    pub lines: usize,
}

/// Everything the engine needs: queues, agents and the seed of the `random` strategy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcdConfig {
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentSpec>,
    /// Seed of the generator behind [`Strategy::Random`]; fixed in tests for repeatable runs.
    pub seed: u64,
}

impl AcdConfig {
    /// The queues and agents of the application configuration, with a fresh random seed.
    pub fn from_config(config: &crate::config::Config) -> AcdConfig {
        AcdConfig {
            queues: config.queues.iter().map(|q| q.to_queue_config()).collect(),
            agents: config
                .agents
                .iter()
                .map(|a| AgentSpec {
                    id: a.extension.clone(),
                    skills: a.skills.clone(),
                    lines: a.lines,
                })
                .collect(),
            seed: rand::random(),
        }
    }

    /// Checks that types cannot express, naming the queue and key at fault: unique names,
    /// overflow targets that exist, no queue overflowing into itself through a chain
    /// (an immediate overflow, e.g. for a full queue, would otherwise go round for ever).
    pub fn validate(&self) -> Result<(), AcdConfigError> {
        let mut names = HashSet::new();
        for q in &self.queues {
            if q.name.is_empty() {
                return Err(AcdConfigError::new(
                    None,
                    "name",
                    "a queue has an empty name".into(),
                ));
            }
            if !names.insert(q.name.as_str()) {
                return Err(AcdConfigError::new(
                    Some(&q.name),
                    "name",
                    format!("queue {:?} appears twice", q.name),
                ));
            }
        }
        let agents: HashSet<&str> = self.agents.iter().map(|a| a.id.as_str()).collect();
        for q in &self.queues {
            let err = |key: &'static str, message: String| {
                Err(AcdConfigError::new(Some(&q.name), key, message))
            };
            if q.skill.is_empty() {
                return err("skill", "must not be empty".into());
            }
            if q.ring_timeout.is_zero() {
                return err("ring_timeout_s", "must be at least 1 s".into());
            }
            if q.max_length == Some(0) {
                return err(
                    "max_length",
                    "must be at least 1 (leave it out for no limit)".into(),
                );
            }
            if let Some(w) = &q.widen
                && w.skill.is_empty()
            {
                return err("widen", "the skill must not be empty".into());
            }
            match &q.overflow {
                OverflowTarget::Queue(t) if !names.contains(t.as_str()) => {
                    return err("overflow", format!("queue {t:?} is not a configured queue"));
                }
                OverflowTarget::Queue(t) if *t == q.name => {
                    return err("overflow", "a queue cannot overflow into itself".into());
                }
                OverflowTarget::Agent(a) if !agents.contains(a.as_str()) => {
                    return err("overflow", format!("agent {a:?} is not a configured agent"));
                }
                OverflowTarget::Voicemail(s)
                | OverflowTarget::Flow(s)
                | OverflowTarget::External(s)
                    if s.is_empty() =>
                {
                    return err("overflow", "the target must not be empty".into());
                }
                _ => {}
            }
        }
        // Queue → queue overflow edges must not form a loop.
        let next: HashMap<&str, &str> = self
            .queues
            .iter()
            .filter_map(|q| match &q.overflow {
                OverflowTarget::Queue(t) => Some((q.name.as_str(), t.as_str())),
                _ => None,
            })
            .collect();
        for q in &self.queues {
            let mut seen = vec![q.name.as_str()];
            let mut at = q.name.as_str();
            while let Some(&n) = next.get(at) {
                if seen.contains(&n) {
                    seen.push(n);
                    return Err(AcdConfigError::new(
                        Some(&q.name),
                        "overflow",
                        format!(
                            "overflow loop {} (a chain of queue overflows must end elsewhere)",
                            seen.join(" -> ")
                        ),
                    ));
                }
                seen.push(n);
                at = n;
            }
        }
        for a in &self.agents {
            if a.skills.keys().any(|s| s.is_empty()) {
                return Err(AcdConfigError {
                    queue: None,
                    key: "agents.skills",
                    message: format!("agent {} has a skill with an empty name", a.id),
                });
            }
        }
        Ok(())
    }
}

/// A configuration the engine refuses, with the queue and key at fault so the configuration
/// loader can point at the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdConfigError {
    /// The queue's name (`None`: not about one queue).
    pub queue: Option<String>,
    /// The key under `[[queues]]` (or `agents.skills`).
    pub key: &'static str,
    pub message: String,
}

impl AcdConfigError {
    fn new(queue: Option<&str>, key: &'static str, message: String) -> AcdConfigError {
        AcdConfigError {
            queue: queue.map(str::to_string),
            key,
            message,
        }
    }
}

impl std::fmt::Display for AcdConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.queue {
            Some(q) => write!(f, "queues {q:?}, key {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

impl std::error::Error for AcdConfigError {}
