//! The ACD engine: queues per skill group, agents with skills, lines and states, and the
//! decision which agent is offered which caller. Sans-IO: [`Acd::handle`] takes an
//! [`AcdEvent`] and the current time, [`Acd::handle_timeout`] runs the timers that are due,
//! [`Acd::poll_timeout`] says when that is next, and [`Acd::poll_action`] hands out what the
//! integrator must do ([`AcdAction`]). Nothing here reads a clock or does IO; the async ACD
//! actor drains `poll_action` after every input and arms one timer.
//!
//! # The run loop
//!
//! ```text
//! loop {
//!     select { event = rx.recv() => acd.handle(event, Instant::now()),
//!              _ = sleep_until(acd.poll_timeout()) => acd.handle_timeout(Instant::now()) }
//!     while let Some(action) = acd.poll_action() { /* dial, cancel, move, announce, store */ }
//! }
//! ```
//!
//! # Contract with the integrator
//!
//! - **Offers.** [`AcdAction::Offer`] asks the integrator to dial the agent for the call. It
//!   answers with [`AcdEvent::OfferRinging`] (optional), [`AcdEvent::OfferAnswered`] or
//!   [`AcdEvent::OfferFailed`]. The ACD owns the ring timer: when `ring_timeout` passes it
//!   emits [`AcdAction::CancelOffer`], records a ring-no-answer and offers the next agent.
//!   CancelOffer is also emitted when a ring-all call is answered elsewhere, the caller
//!   abandons or overflows, or the agent logs out, goes on break or becomes unreachable.
//!   An answer for an offer that is no longer live (it crossed a CancelOffer) is ignored:
//!   the integrator hangs that agent leg up, as it does for a 200 crossing a CANCEL.
//! - **Overflow to a queue is internal.** The ACD moves the caller into the target queue
//!   itself, keeping their original `arrived` time (so they are ordered as if they had
//!   waited there all along), and emits [`AcdAction::Requeued`] so the call actor can switch
//!   to that queue's hold music. Every other target comes out as [`AcdAction::Overflow`]
//!   and the call is no longer the ACD's. `max_wait` counts from entering *this* queue, so a
//!   moved caller gets the target queue's full wait before overflowing again.
//! - **Entry.** A caller arriving at a queue that is full, or where no agent is logged in,
//!   does not enter it: they overflow at once (reason [`OverflowReason::QueueFull`] /
//!   [`OverflowReason::NoAgents`]). When the last agent of a queue logs out, its waiting
//!   callers overflow with `NoAgents` too. Agents on break or unreachable still count as
//!   logged in: they come back.
//! - **Priority.** Higher `priority` is served first; equal priorities by `arrived`, then by
//!   the order the ACD learned of the calls. An agent free for several queues takes the
//!   best caller over all of them by that order.
//! - **Skipping.** An agent who missed, refused or failed a call is not offered that call
//!   again while another free agent can take it; when only such agents are free the call
//!   is offered to them again (a caller is never left waiting beside a free agent).
//! - **Widening.** After `widen.after` in the queue a caller may also be offered to agents of
//!   `widen.skill`; agents of the queue's own skill are still preferred.
//! - **Reachability.** Agents start unreachable: the integrator sends
//!   [`AcdEvent::AgentReachable`] `true` when the agent's endpoint registers or its WebSocket
//!   connects (at start for a static contact), `false` when it goes. An unreachable agent is
//!   never offered a call; one who becomes unreachable while ringing has the offer withdrawn.
//! - **Agent states.** [`AcdEvent::AgentLogin`] makes an agent available. A break asked for on
//!   a call starts when the call's wrap-up ends; [`AcdEvent::AgentReady`] ends a break or a
//!   wrap-up early. A call ends into the queue's `wrap_up` (none: available at once).
//!   Logging out on a call leaves the call alone; its end no longer changes the state.
//! - **Lines.** An agent is offered a queue call only when Available, reachable, with no
//!   offer ringing and a free line. A queue call makes them OnCall until it ends (one queue
//!   call at a time). Direct calls ([`AcdEvent::DirectCallStarted`]) do not change the state:
//!   they only take a line. So an Available agent with two lines on one direct call can still
//!   be offered a queue caller; with one line they cannot.
//! - **Fewest calls today** counts queue calls answered since the engine started or since
//!   the last [`Acd::reset_daily_counts`], which the actor calls at the day boundary it
//!   chooses (the engine knows no calendar).
//! - **Expected wait** = position × average handling time ÷ agents staffing the queue
//!   (logged in, reachable, not on break). The handling time of a call is talk time (answer
//!   to end) plus the queue's configured wrap-up, over the last [`HANDLING_SAMPLES`] calls;
//!   `None` until a call was handled.
//! - **Announcements** ([`AcdAction::Announce`]) come on entry (after that step's offers are
//!   decided) and every `announce_every`, never while an agent rings for the caller.
//! - **Events.** Every enter, refusal, offer, ringing, ring-no-answer, offer failure or
//!   cancel, answer, abandon, overflow, leave, queue-call end and agent state change comes
//!   out as [`AcdAction::Event`] with its time, for the store; [`queue_stats`] computes
//!   service level, average speed of answer and abandon rate from them for any interval.
//! - **Reconfiguration** ([`Acd::reconfigure`]) keeps live calls, offers and agent states by
//!   name; see there for what happens to removed queues and agents.
//!
//! # Invariants
//!
//! Checked by [`Acd::invariants`] after every step in debug builds and in tests:
//! a call is offered to at most one agent at a time unless its queue rings all, and each
//! offered agent is Ringing with exactly that offer; no agent is Ringing without a live offer;
//! each waiting caller is in exactly one queue; every caller who entered a queue leaves it
//! exactly once, with a reason (`entered − left = waiting`); each live timer belongs to
//! live state.

pub mod actor;
pub mod config;
pub mod stats;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use config::{
    AcdConfig, AcdConfigError, AgentSpec, OverflowTarget, QueueConfig, Strategy, Widen,
};
pub use stats::{QueueStats, queue_stats};

/// The break reason given to an agent who missed `no_answer_break_after` offers in a row.
pub const NO_ANSWER_BREAK: &str = "no answer";

/// How long after an offer failed (ring-no-answer, busy, unreachable) the agents who already
/// failed a caller may be offered that caller again, when nobody else is free: a phone that
/// refuses at once would otherwise be rung again at once, in a loop (Asterisk's `retry`).
/// Agents who have not tried the caller yet are offered at once.
pub const RETRY_AFTER: Duration = Duration::from_secs(config::DEFAULT_RETRY_S);

/// How many recent calls the expected-wait estimate averages.
pub const HANDLING_SAMPLES: usize = 20;

/// The integrator's call key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// Why an agent leg failed.
///
/// Every failure skips the agent for this caller while others are free. Only `NoAnswer`
/// counts as a miss towards the "no answer" break. `Unreachable` does not mark the agent
/// unreachable: that is [`AcdEvent::AgentReachable`]'s job, from the registrar or WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFailure {
    Busy,
    Rejected,
    Unreachable,
    /// The endpoint gave up ringing before our ring timeout; counts as a miss.
    NoAnswer,
}

/// Input to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum AcdEvent {
    /// A caller enters `queue`. `arrived` is their original arrival (kept across overflows).
    CallQueued {
        call: CallRef,
        queue: String,
        priority: u8,
        arrived: Instant,
        caller: String,
    },
    /// The caller hung up while queued or ringing.
    CallAbandoned {
        call: CallRef,
    },
    /// The agent's endpoint is ringing (the offer reached it).
    OfferRinging {
        call: CallRef,
        agent: String,
    },
    /// The agent answered: the call leaves the queue.
    OfferAnswered {
        call: CallRef,
        agent: String,
    },
    /// The agent leg failed: the next agent is tried.
    OfferFailed {
        call: CallRef,
        agent: String,
        reason: OfferFailure,
    },
    /// An answered queue call ended: the agent goes to wrap-up or available.
    CallEnded {
        call: CallRef,
        agent: String,
    },
    AgentLogin {
        agent: String,
    },
    AgentLogout {
        agent: String,
    },
    /// Available: ends a break or a wrap-up early.
    AgentReady {
        agent: String,
    },
    AgentBreak {
        agent: String,
        reason: String,
    },
    /// The agent's endpoint appeared or went away (registration, WebSocket).
    AgentReachable {
        agent: String,
        reachable: bool,
    },
    /// A call that did not come through a queue took one of the agent's lines.
    DirectCallStarted {
        agent: String,
    },
    DirectCallEnded {
        agent: String,
    },
    /// The agent recorded the disposition of `call` (a queue call whose queue has result
    /// codes): the wrap-up it held open can end.
    Disposed {
        call: CallRef,
        agent: String,
    },
}

/// Why a caller left a queue for somewhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowReason {
    /// Waited the queue's `max_wait`.
    MaxWait,
    /// No agent of the queue is logged in.
    NoAgents,
    /// The queue holds `max_length` callers already.
    QueueFull,
    /// `CallQueued` named a queue that does not exist (the caller is hung up).
    UnknownQueue,
    /// An admin removed the queue the caller waited in.
    QueueRemoved,
    /// Queue overflows went round in a circle (only possible with an unvalidated config).
    Loop,
}

/// What the integrator must do, or record.
#[derive(Debug, Clone, PartialEq)]
pub enum AcdAction {
    /// Dial `agent` for `call`. The ACD cancels the offer itself after `ring_timeout`.
    Offer {
        call: CallRef,
        agent: String,
        queue: String,
        ring_timeout: Duration,
    },
    /// Stop ringing `agent` for `call`.
    CancelOffer { call: CallRef, agent: String },
    /// The caller leaves the ACD for `target` (never a queue: see [`AcdAction::Requeued`]).
    Overflow {
        call: CallRef,
        target: OverflowTarget,
        reason: OverflowReason,
    },
    /// Already done by the ACD: the caller moved from `from` to queue `to` (switch hold music).
    Requeued {
        call: CallRef,
        from: String,
        to: String,
        reason: OverflowReason,
    },
    /// Tell the caller their position (1 = next) and expected wait.
    Announce {
        call: CallRef,
        position: usize,
        expected_wait: Option<Duration>,
    },
    /// A queue or agent event for the store and the statistics.
    Event(QueueEvent),
}

/// An agent's state. Ringing, OnCall and WrapUp are entered by the ACD only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentState {
    LoggedOut,
    Available,
    Break { reason: String },
    Ringing,
    OnCall,
    WrapUp,
}

impl AgentState {
    /// The state's name in the API and the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Break { .. } => "break",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::WrapUp => "wrap_up",
        }
    }
}

/// An agent as the API and CTI show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub state: AgentState,
    /// When the state was entered (`None` before the agent's first state change).
    pub since: Option<Instant>,
    pub reachable: bool,
    pub lines: usize,
    /// Lines taken by a ringing offer, a queue call and direct calls.
    pub lines_in_use: usize,
    pub direct_calls: usize,
    /// The call being offered to the agent.
    pub offer: Option<CallRef>,
    /// The queue call the agent is on (it may outlive a logout).
    pub queue_call: Option<CallRef>,
    /// Queue calls answered since start or [`Acd::reset_daily_counts`].
    pub answered_today: u32,
    pub misses_in_row: u32,
    /// A break asked for during a call, taken when the call's wrap-up ends.
    pub pending_break: Option<String>,
    pub wrap_up_until: Option<Instant>,
    /// The queue call whose disposition the agent still owes, and its queue: until it is
    /// recorded the agent stays in wrap-up (or on break, or logged out), never available.
    pub owes_disposition: Option<(CallRef, String)>,
}

/// A queue as the wallboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    pub name: String,
    /// Callers in service order.
    pub waiting: Vec<WaitingCaller>,
    /// Since entering this queue, of the caller who entered it first.
    pub longest_wait: Option<Duration>,
    /// Agents holding the queue's skill, by state.
    pub agents_available: usize,
    pub agents_ringing: usize,
    pub agents_on_call: usize,
    pub agents_wrap_up: usize,
    pub agents_on_break: usize,
    pub agents_logged_out: usize,
    /// Logged in but their endpoint is gone.
    pub agents_unreachable: usize,
}

/// One waiting caller in a [`QueueSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCaller {
    pub call: CallRef,
    pub caller: String,
    pub priority: u8,
    pub arrived: Instant,
    pub entered: Instant,
    /// Agents ringing for this caller now.
    pub offered_to: Vec<String>,
}

/// A record of something that happened, with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEvent {
    pub time: Instant,
    pub queue: Option<String>,
    pub call: Option<CallRef>,
    pub agent: Option<String>,
    pub kind: QueueEventKind,
}

/// Why a caller left a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    Answered,
    Abandoned,
    /// Moved to the overflow target.
    Overflow(OverflowReason),
    /// Waited `max_wait` and the queue's overflow target is hang-up.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEventKind {
    /// The caller entered the queue.
    Enter {
        priority: u8,
        arrived: Instant,
        caller: String,
    },
    Offer,
    Ringing,
    RingNoAnswer,
    OfferFailed(OfferFailure),
    /// An offer withdrawn for another reason than ring-no-answer (answered elsewhere,
    /// abandoned, agent left).
    OfferCancelled,
    /// `waited`: time in this queue.
    Answer {
        waited: Duration,
    },
    Abandon {
        waited: Duration,
    },
    /// The caller did not enter the queue (full, unstaffed, unknown) and goes to `target`.
    /// No `Leave` follows.
    Refused {
        target: OverflowTarget,
        reason: OverflowReason,
    },
    /// A waiting caller goes to `target`; their `Leave` follows.
    Overflow {
        target: OverflowTarget,
        reason: OverflowReason,
    },
    /// Exactly one per `Enter`. `waited`: time in this queue.
    Leave {
        reason: LeaveReason,
        waited: Duration,
    },
    /// An answered queue call ended after `talk`.
    CallEnded {
        talk: Duration,
    },
    AgentState {
        state: AgentState,
    },
}

/// The engine. See the module documentation.
pub struct Acd {
    queues: Vec<Queue>,
    queue_index: HashMap<String, usize>,
    agents: Vec<Agent>,
    agent_index: HashMap<String, usize>,
    waiting: HashMap<CallRef, Waiting>,
    timers: BTreeSet<(Instant, TimerKey)>,
    actions: VecDeque<AcdAction>,
    rng: StdRng,
    /// Orders calls queued at the same instant with the same priority.
    seq: u64,
    entered: u64,
    left: u64,
    /// The time of the last input, for snapshots taken between inputs.
    now: Option<Instant>,
}

struct Queue {
    cfg: QueueConfig,
    skill: usize,
    widen_skill: Option<usize>,
    /// Waiting callers in service order.
    order: BTreeSet<OrderKey>,
    /// Agent index offered last, for round-robin.
    rr_last: Option<usize>,
    handling: VecDeque<Duration>,
}

type OrderKey = (Reverse<u8>, Instant, u64, CallRef);

struct Agent {
    id: String,
    /// Level per skill id.
    skills: Vec<Option<u8>>,
    lines: usize,
    state: AgentState,
    since: Option<Instant>,
    /// When the agent last became free of queue work; longest-idle orders by it.
    idle_since: Option<Instant>,
    reachable: bool,
    offer: Option<CallRef>,
    queue_call: Option<QueueCall>,
    direct_calls: usize,
    answered_today: u32,
    misses_in_row: u32,
    pending_break: Option<String>,
    wrap_up_until: Option<Instant>,
    owes_disposition: Option<(CallRef, String)>,
}

struct QueueCall {
    call: CallRef,
    queue: String,
    answered: Instant,
    wrap_up: Duration,
    /// The queue has result codes: the call needs a disposition.
    disposition_required: bool,
}

struct Waiting {
    call: CallRef,
    queue: usize,
    priority: u8,
    arrived: Instant,
    entered: Instant,
    caller: String,
    seq: u64,
    /// Agents ringing for this call and when their ring timer fires.
    offers: Vec<(usize, Instant)>,
    /// Agents who missed or refused this call.
    skipped: Vec<usize>,
    widened: bool,
    max_wait_at: Option<Instant>,
    widen_at: Option<Instant>,
    announce_at: Option<Instant>,
    /// Agents who failed this caller are not offered them again before this (the queue's
    /// `retry`, [`RETRY_AFTER`] by default).
    retry_at: Option<Instant>,
}

impl Waiting {
    fn key(&self) -> OrderKey {
        (Reverse(self.priority), self.arrived, self.seq, self.call)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Ring(CallRef, usize),
    MaxWait(CallRef),
    Widen(CallRef),
    Announce(CallRef),
    Retry(CallRef),
    WrapUp(usize),
}

impl Acd {
    /// An engine with every agent logged out and unreachable, and no caller.
    pub fn new(config: AcdConfig) -> Acd {
        let mut skill_ids: HashMap<String, usize> = HashMap::new();
        let mut skill_id = |name: &str| {
            let n = skill_ids.len();
            *skill_ids.entry(name.to_string()).or_insert(n)
        };
        let mut queues = Vec::new();
        for q in &config.queues {
            let skill = skill_id(&q.skill);
            let widen_skill = q.widen.as_ref().map(|w| skill_id(&w.skill));
            queues.push(Queue {
                cfg: q.clone(),
                skill,
                widen_skill,
                order: BTreeSet::new(),
                rr_last: None,
                handling: VecDeque::new(),
            });
        }
        let n_skills = skill_ids.len();
        let agents: Vec<Agent> = config
            .agents
            .iter()
            .map(|a| {
                let mut skills = vec![None; n_skills];
                for (name, level) in &a.skills {
                    // Skills no queue uses need no slot.
                    if let Some(&id) = skill_ids.get(name) {
                        skills[id] = Some(*level);
                    }
                }
                Agent {
                    id: a.id.clone(),
                    skills,
                    lines: a.lines,
                    state: AgentState::LoggedOut,
                    since: None,
                    idle_since: None,
                    // Unknown until the integrator reports the endpoint: never offer blind.
                    reachable: false,
                    offer: None,
                    queue_call: None,
                    direct_calls: 0,
                    answered_today: 0,
                    misses_in_row: 0,
                    pending_break: None,
                    wrap_up_until: None,
                    owes_disposition: None,
                }
            })
            .collect();
        // Duplicates (only possible unvalidated): the first entry wins, as lookups go by name.
        let mut queue_index = HashMap::new();
        for (i, q) in queues.iter().enumerate() {
            queue_index.entry(q.cfg.name.clone()).or_insert(i);
        }
        let mut agent_index = HashMap::new();
        for (i, a) in agents.iter().enumerate() {
            agent_index.entry(a.id.clone()).or_insert(i);
        }
        Acd {
            queues,
            queue_index,
            agents,
            agent_index,
            waiting: HashMap::new(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            rng: StdRng::seed_from_u64(config.seed),
            seq: 0,
            entered: 0,
            left: 0,
            now: None,
        }
    }

    /// Feeds one event. Events naming unknown calls or agents, or that do not fit the
    /// current state (a stale answer, a second login), are ignored.
    pub fn handle(&mut self, event: AcdEvent, now: Instant) {
        self.now = Some(now);
        match event {
            AcdEvent::CallQueued {
                call,
                queue,
                priority,
                arrived,
                caller,
            } => self.call_queued(call, &queue, priority, arrived, caller, now),
            AcdEvent::CallAbandoned { call } => self.call_abandoned(call, now),
            AcdEvent::OfferRinging { call, agent } => {
                if let Some(a) = self.agent_idx(&agent)
                    && self.agents[a].offer == Some(call)
                {
                    let q = self.waiting.get(&call).map(|w| w.queue);
                    self.event(now, q, Some(call), Some(a), QueueEventKind::Ringing);
                }
            }
            AcdEvent::OfferAnswered { call, agent } => {
                if let Some(a) = self.agent_idx(&agent) {
                    self.offer_answered(call, a, now);
                }
            }
            AcdEvent::OfferFailed {
                call,
                agent,
                reason,
            } => {
                if let Some(a) = self.agent_idx(&agent) {
                    self.offer_failed(call, a, reason, now);
                }
            }
            AcdEvent::CallEnded { call, agent } => {
                if let Some(a) = self.agent_idx(&agent) {
                    self.call_ended(call, a, now);
                }
            }
            AcdEvent::AgentLogin { agent } => {
                if let Some(a) = self.agent_idx(&agent)
                    && self.agents[a].state == AgentState::LoggedOut
                {
                    let state = if self.agents[a].queue_call.is_some() {
                        AgentState::OnCall
                    } else if self.agents[a].owes_disposition.is_some() {
                        // Back from a logout with a disposition owed: wrap-up until it is.
                        AgentState::WrapUp
                    } else {
                        self.agents[a].idle_since = Some(now);
                        AgentState::Available
                    };
                    self.agents[a].misses_in_row = 0;
                    self.set_state(a, state, now);
                }
            }
            AcdEvent::AgentLogout { agent } => {
                if let Some(a) = self.agent_idx(&agent)
                    && self.agents[a].state != AgentState::LoggedOut
                {
                    self.withdraw_offer(a, now);
                    self.stop_wrap_up(a);
                    self.agents[a].pending_break = None;
                    self.set_state(a, AgentState::LoggedOut, now);
                    self.overflow_unstaffed(now);
                }
            }
            AcdEvent::AgentReady { agent } => {
                if let Some(a) = self.agent_idx(&agent)
                    && matches!(
                        self.agents[a].state,
                        AgentState::Break { .. } | AgentState::WrapUp
                    )
                    && self.agents[a].owes_disposition.is_none()
                {
                    self.stop_wrap_up(a);
                    self.agents[a].pending_break = None;
                    self.agents[a].misses_in_row = 0;
                    self.agents[a].idle_since = Some(now);
                    self.set_state(a, AgentState::Available, now);
                }
            }
            AcdEvent::Disposed { call, agent } => {
                if let Some(a) = self.agent_idx(&agent)
                    && self.agents[a].owes_disposition.as_ref().map(|o| o.0) == Some(call)
                {
                    self.agents[a].owes_disposition = None;
                    if self.agents[a].state == AgentState::WrapUp
                        && self.agents[a].wrap_up_until.is_none()
                    {
                        self.end_wrap_up(a, now);
                    }
                }
            }
            AcdEvent::AgentBreak { agent, reason } => {
                if let Some(a) = self.agent_idx(&agent) {
                    self.agent_break(a, reason, now);
                }
            }
            AcdEvent::AgentReachable { agent, reachable } => {
                if let Some(a) = self.agent_idx(&agent)
                    && self.agents[a].reachable != reachable
                {
                    self.agents[a].reachable = reachable;
                    if !reachable {
                        self.withdraw_offer(a, now);
                    }
                }
            }
            AcdEvent::DirectCallStarted { agent } => {
                if let Some(a) = self.agent_idx(&agent) {
                    self.agents[a].direct_calls += 1;
                }
            }
            AcdEvent::DirectCallEnded { agent } => {
                if let Some(a) = self.agent_idx(&agent) {
                    let d = &mut self.agents[a].direct_calls;
                    *d = d.saturating_sub(1);
                }
            }
        }
        self.dispatch(now);
        self.debug_check();
    }

    /// Runs every timer due at `now`: ring timeouts, max waits, widening, announcements,
    /// wrap-up ends.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, key));
            match key {
                TimerKey::Ring(call, a) => self.ring_timeout(call, a, now),
                TimerKey::MaxWait(call) => {
                    if let Some(w) = self.waiting.get_mut(&call) {
                        w.max_wait_at = None;
                        self.overflow(call, OverflowReason::MaxWait, now);
                    }
                }
                TimerKey::Widen(call) => {
                    if let Some(w) = self.waiting.get_mut(&call) {
                        w.widened = true;
                        w.widen_at = None;
                    }
                }
                TimerKey::Announce(call) => self.announce(call, now),
                TimerKey::Retry(call) => {
                    if let Some(w) = self.waiting.get_mut(&call) {
                        w.retry_at = None;
                    }
                }
                TimerKey::WrapUp(a) => {
                    self.agents[a].wrap_up_until = None;
                    // An owed disposition holds the wrap-up open.
                    if self.agents[a].owes_disposition.is_none() {
                        self.end_wrap_up(a, now);
                    }
                }
            }
        }
        self.dispatch(now);
        self.debug_check();
    }

    /// When [`Acd::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The next thing to do, in the order it happened.
    pub fn poll_action(&mut self) -> Option<AcdAction> {
        self.actions.pop_front()
    }

    /// Starts a new day for the `fewest-calls` strategy.
    pub fn reset_daily_counts(&mut self) {
        for a in &mut self.agents {
            a.answered_today = 0;
        }
    }

    pub fn agent_state(&self, agent: &str) -> Option<AgentStatus> {
        let a = &self.agents[*self.agent_index.get(agent)?];
        Some(AgentStatus {
            state: a.state.clone(),
            since: a.since,
            reachable: a.reachable,
            lines: a.lines,
            lines_in_use: a.lines_in_use(),
            direct_calls: a.direct_calls,
            offer: a.offer,
            queue_call: a.queue_call.as_ref().map(|c| c.call),
            answered_today: a.answered_today,
            misses_in_row: a.misses_in_row,
            pending_break: a.pending_break.clone(),
            wrap_up_until: a.wrap_up_until,
            owes_disposition: a.owes_disposition.clone(),
        })
    }

    /// The queue's waiting callers and its agents by state. `longest_wait` is measured to
    /// the time of the last input; [`Acd::queue_snapshot_at`] measures it to a given time.
    pub fn queue_snapshot(&self, queue: &str) -> Option<QueueSnapshot> {
        self.snapshot(queue, None)
    }

    /// [`Acd::queue_snapshot`] with `longest_wait` measured to `now`.
    pub fn queue_snapshot_at(&self, queue: &str, now: Instant) -> Option<QueueSnapshot> {
        self.snapshot(queue, Some(now))
    }

    /// Every queue's waiting callers and longest wait, and the agents by state (every state
    /// named, with 0 where nobody is), for the metrics.
    pub fn floor_figures(&self, now: Instant) -> crate::metrics::FloorFigures {
        let queues = self
            .queues
            .iter()
            .filter_map(|q| self.snapshot(&q.cfg.name, Some(now)))
            .map(|s| (s.name, s.waiting.len(), s.longest_wait))
            .collect();
        let mut agents: std::collections::BTreeMap<&'static str, usize> = [
            AgentState::LoggedOut,
            AgentState::Available,
            AgentState::Break {
                reason: String::new(),
            },
            AgentState::Ringing,
            AgentState::OnCall,
            AgentState::WrapUp,
        ]
        .iter()
        .map(|s| (s.name(), 0))
        .collect();
        for a in &self.agents {
            *agents.entry(a.state.name()).or_default() += 1;
        }
        crate::metrics::FloorFigures { queues, agents }
    }

    /// Replaces queues and agents, keeping live calls: waiting callers stay in their queue
    /// (by name) with their times, offers to agents who still exist keep ringing, agents keep
    /// their state, counts and calls. Callers of a removed queue overflow to that queue's old
    /// target (reason [`OverflowReason::QueueRemoved`]); offers to removed agents are
    /// cancelled. New `max_wait`, widening and ring settings apply to waiting callers measured
    /// from their entry (a `max_wait` already exceeded overflows them now).
    pub fn reconfigure(&mut self, config: AcdConfig, now: Instant) {
        self.now = Some(now);
        let new = Acd::new(config);
        let old_agents = std::mem::replace(&mut self.agents, new.agents);
        let old_queues = std::mem::replace(&mut self.queues, new.queues);
        self.agent_index = new.agent_index;
        self.queue_index = new.queue_index;
        let mut old_waiting: Vec<Waiting> = self.waiting.drain().map(|(_, w)| w).collect();
        old_waiting.sort_by_key(|w| w.key());
        self.timers.clear();

        // Old agent index → new.
        let agent_map: Vec<Option<usize>> = old_agents
            .iter()
            .map(|a| self.agent_index.get(&a.id).copied())
            .collect();
        for (old, new_idx) in old_agents.into_iter().zip(&agent_map) {
            let Some(n) = *new_idx else {
                if let Some(call) = old.offer {
                    self.actions.push_back(AcdAction::CancelOffer {
                        call,
                        agent: old.id.clone(),
                    });
                }
                if old.state != AgentState::LoggedOut {
                    self.push_event(
                        now,
                        None,
                        None,
                        Some(old.id),
                        QueueEventKind::AgentState {
                            state: AgentState::LoggedOut,
                        },
                    );
                }
                continue;
            };
            let a = &mut self.agents[n];
            a.state = old.state;
            a.since = old.since;
            a.idle_since = old.idle_since;
            a.reachable = old.reachable;
            a.queue_call = old.queue_call;
            a.direct_calls = old.direct_calls;
            a.answered_today = old.answered_today;
            a.misses_in_row = old.misses_in_row;
            a.pending_break = old.pending_break;
            a.wrap_up_until = old.wrap_up_until;
            a.owes_disposition = old.owes_disposition;
            // The offer is re-attached below with its call, if the call stays.
            if let Some(until) = a.wrap_up_until {
                self.timers.insert((until, TimerKey::WrapUp(n)));
            }
        }
        let mut old_targets = Vec::new();
        for q in old_queues {
            if let Some(&n) = self.queue_index.get(&q.cfg.name) {
                self.queues[n].handling = q.handling;
                self.queues[n].rr_last = q.rr_last.and_then(|i| agent_map[i]);
            }
            old_targets.push((q.cfg.name, q.cfg.overflow));
        }

        for mut w in old_waiting {
            let offers: Vec<(usize, Instant)> = w
                .offers
                .iter()
                .filter_map(|&(a, at)| agent_map[a].map(|n| (n, at)))
                .collect();
            w.skipped = w.skipped.iter().filter_map(|&a| agent_map[a]).collect();
            let (old_name, old_target) = &old_targets[w.queue];
            let Some(&qi) = self.queue_index.get(old_name) else {
                // The queue is gone: its ringing agents are released, the caller moves on.
                for (a, _) in offers {
                    self.actions.push_back(AcdAction::CancelOffer {
                        call: w.call,
                        agent: self.agents[a].id.clone(),
                    });
                }
                let waited = now.saturating_duration_since(w.entered);
                let reason = OverflowReason::QueueRemoved;
                self.push_event(
                    now,
                    Some(old_name.clone()),
                    Some(w.call),
                    None,
                    QueueEventKind::Overflow {
                        target: old_target.clone(),
                        reason,
                    },
                );
                self.push_event(
                    now,
                    Some(old_name.clone()),
                    Some(w.call),
                    None,
                    QueueEventKind::Leave {
                        reason: LeaveReason::Overflow(reason),
                        waited,
                    },
                );
                self.left += 1;
                let carry = Carry {
                    call: w.call,
                    priority: w.priority,
                    arrived: w.arrived,
                    caller: w.caller,
                };
                self.send_to(carry, old_target.clone(), reason, old_name.clone(), now, 0);
                continue;
            };
            w.queue = qi;
            let cfg = self.queues[qi].cfg.clone();
            w.offers.clear();
            for (i, (a, at)) in offers.into_iter().enumerate() {
                if i > 0 && cfg.strategy != Strategy::RingAll {
                    // The queue no longer rings all: one offer stays, the others stop.
                    self.actions.push_back(AcdAction::CancelOffer {
                        call: w.call,
                        agent: self.agents[a].id.clone(),
                    });
                    continue;
                }
                // A ringing offer keeps its timer: the agent was told how long it rings.
                w.offers.push((a, at));
                self.agents[a].offer = Some(w.call);
                self.timers.insert((at, TimerKey::Ring(w.call, a)));
            }
            w.max_wait_at = cfg.max_wait.map(|m| w.entered + m);
            w.widen_at = match (&cfg.widen, w.widened) {
                (Some(widen), false) => Some(w.entered + widen.after),
                _ => None,
            };
            if cfg.widen.is_none() {
                w.widened = false;
            }
            w.announce_at = cfg
                .announce_every
                .map(|every| w.announce_at.unwrap_or(now + every));
            self.arm_call_timers(&w);
            self.queues[qi].order.insert(w.key());
            self.waiting.insert(w.call, w);
        }
        // Agents whose offer went with a removed queue or agent ring no more.
        for a in 0..self.agents.len() {
            if self.agents[a].state == AgentState::Ringing && self.agents[a].offer.is_none() {
                self.set_state(a, AgentState::Available, now);
            }
            if self.agents[a].state == AgentState::WrapUp
                && self.agents[a].wrap_up_until.is_none()
                && self.agents[a].owes_disposition.is_none()
            {
                self.end_wrap_up(a, now);
            }
        }
        self.overflow_unstaffed(now);
        // Timers the new settings put in the past (a shorter max wait) run now.
        self.handle_timeout(now);
    }

    /// Checks the engine's invariants (see the module documentation); the error says which
    /// one broke. Called after every step in debug builds.
    pub fn invariants(&self) -> Result<(), String> {
        let in_order: usize = self.queues.iter().map(|q| q.order.len()).sum();
        if in_order != self.waiting.len() {
            return Err(format!(
                "{} callers in queue order, {} waiting",
                in_order,
                self.waiting.len()
            ));
        }
        if self.entered.checked_sub(self.left) != Some(self.waiting.len() as u64) {
            return Err(format!(
                "entered {} - left {} != waiting {}",
                self.entered,
                self.left,
                self.waiting.len()
            ));
        }
        for (call, w) in &self.waiting {
            let q = self
                .queues
                .get(w.queue)
                .ok_or_else(|| format!("{call:?} in missing queue {}", w.queue))?;
            if !q.order.contains(&w.key()) {
                return Err(format!("{call:?} not in the order of {}", q.cfg.name));
            }
            if w.offers.len() > 1 && q.cfg.strategy != Strategy::RingAll {
                return Err(format!(
                    "{call:?} offered to {} agents in {:?} queue {}",
                    w.offers.len(),
                    q.cfg.strategy,
                    q.cfg.name
                ));
            }
            for (i, &(a, at)) in w.offers.iter().enumerate() {
                if w.offers[..i].iter().any(|&(b, _)| b == a) {
                    return Err(format!("{call:?} offered twice to agent {a}"));
                }
                let agent = &self.agents[a];
                if agent.offer != Some(*call) || agent.state != AgentState::Ringing {
                    return Err(format!(
                        "{call:?} offered to {} who is {:?} with offer {:?}",
                        agent.id, agent.state, agent.offer
                    ));
                }
                if !agent.reachable {
                    return Err(format!("{call:?} ringing unreachable {}", agent.id));
                }
                if !self.timers.contains(&(at, TimerKey::Ring(*call, a))) {
                    return Err(format!("{call:?} offer to {} has no ring timer", agent.id));
                }
            }
            for (at, key) in [
                (w.max_wait_at, TimerKey::MaxWait(*call)),
                (w.widen_at, TimerKey::Widen(*call)),
                (w.announce_at, TimerKey::Announce(*call)),
                (w.retry_at, TimerKey::Retry(*call)),
            ] {
                if let Some(at) = at
                    && !self.timers.contains(&(at, key))
                {
                    return Err(format!("{call:?}: {key:?} not armed"));
                }
            }
        }
        for a in &self.agents {
            match (&a.state, a.offer) {
                (AgentState::Ringing, Some(call)) => {
                    let live = self
                        .waiting
                        .get(&call)
                        .is_some_and(|w| w.offers.iter().any(|&(i, _)| self.agents[i].id == a.id));
                    if !live {
                        return Err(format!("{} rings for {call:?} with no live offer", a.id));
                    }
                }
                (AgentState::Ringing, None) => {
                    return Err(format!("{} is ringing without an offer", a.id));
                }
                (state, Some(call)) => {
                    return Err(format!("{} holds offer {call:?} while {state:?}", a.id));
                }
                _ => {}
            }
            if a.state == AgentState::OnCall && a.queue_call.is_none() {
                return Err(format!("{} on call without a queue call", a.id));
            }
            let wrapping = a.wrap_up_until.is_some() || a.owes_disposition.is_some();
            if a.state == AgentState::WrapUp && !wrapping
                || a.state != AgentState::WrapUp && a.wrap_up_until.is_some()
            {
                return Err(format!(
                    "{} is {:?} with wrap-up until {:?}",
                    a.id, a.state, a.wrap_up_until
                ));
            }
        }
        for &(at, key) in &self.timers {
            let ok = match key {
                TimerKey::Ring(call, a) => self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| w.offers.contains(&(a, at))),
                TimerKey::MaxWait(call) => self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| w.max_wait_at == Some(at)),
                TimerKey::Widen(call) => self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| w.widen_at == Some(at)),
                TimerKey::Announce(call) => self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| w.announce_at == Some(at)),
                TimerKey::Retry(call) => self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| w.retry_at == Some(at)),
                TimerKey::WrapUp(a) => self
                    .agents
                    .get(a)
                    .is_some_and(|ag| ag.wrap_up_until == Some(at)),
            };
            if !ok {
                return Err(format!("stale timer {key:?} at {at:?}"));
            }
        }
        Ok(())
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions)
            && let Err(e) = self.invariants()
        {
            // A broken invariant is a bug in this module, never a consequence of input.
            panic!("ACD invariant broken: {e}");
        }
    }

    fn agent_idx(&self, agent: &str) -> Option<usize> {
        self.agent_index.get(agent).copied()
    }

    fn push_event(
        &mut self,
        time: Instant,
        queue: Option<String>,
        call: Option<CallRef>,
        agent: Option<String>,
        kind: QueueEventKind,
    ) {
        self.actions.push_back(AcdAction::Event(QueueEvent {
            time,
            queue,
            call,
            agent,
            kind,
        }));
    }

    fn event(
        &mut self,
        now: Instant,
        queue: Option<usize>,
        call: Option<CallRef>,
        agent: Option<usize>,
        kind: QueueEventKind,
    ) {
        let queue = queue.map(|q| self.queues[q].cfg.name.clone());
        let agent = agent.map(|a| self.agents[a].id.clone());
        self.push_event(now, queue, call, agent, kind);
    }

    fn set_state(&mut self, a: usize, state: AgentState, now: Instant) {
        if self.agents[a].state == state {
            return;
        }
        self.agents[a].state = state.clone();
        self.agents[a].since = Some(now);
        self.event(
            now,
            None,
            None,
            Some(a),
            QueueEventKind::AgentState { state },
        );
    }

    fn call_queued(
        &mut self,
        call: CallRef,
        queue: &str,
        priority: u8,
        arrived: Instant,
        caller: String,
        now: Instant,
    ) {
        if self.waiting.contains_key(&call) {
            // Already queued: a duplicate from the integrator changes nothing.
            return;
        }
        let carry = Carry {
            call,
            priority,
            arrived,
            caller,
        };
        match self.queue_index.get(queue) {
            Some(&qi) => self.enter(carry, qi, now, 0, None),
            None => {
                let reason = OverflowReason::UnknownQueue;
                self.push_event(
                    now,
                    Some(queue.to_string()),
                    Some(call),
                    None,
                    QueueEventKind::Refused {
                        target: OverflowTarget::Hangup,
                        reason,
                    },
                );
                self.actions.push_back(AcdAction::Overflow {
                    call,
                    target: OverflowTarget::Hangup,
                    reason,
                });
            }
        }
    }

    /// Puts a caller into queue `qi`, or sends them on when it is full or unstaffed.
    /// `hops` counts queue-to-queue moves within one step, so a loop cannot spin.
    fn enter(
        &mut self,
        carry: Carry,
        qi: usize,
        now: Instant,
        hops: usize,
        from: Option<(String, OverflowReason)>,
    ) {
        if hops > self.queues.len() {
            let reason = OverflowReason::Loop;
            self.actions.push_back(AcdAction::Overflow {
                call: carry.call,
                target: OverflowTarget::Hangup,
                reason,
            });
            return;
        }
        let refused = if !self.staffed(qi) {
            Some(OverflowReason::NoAgents)
        } else if self.queues[qi]
            .cfg
            .max_length
            .is_some_and(|max| self.queues[qi].order.len() >= max)
        {
            Some(OverflowReason::QueueFull)
        } else {
            None
        };
        if let Some(reason) = refused {
            let target = self.queues[qi].cfg.overflow.clone();
            self.event(
                now,
                Some(qi),
                Some(carry.call),
                None,
                QueueEventKind::Refused {
                    target: target.clone(),
                    reason,
                },
            );
            let name = self.queues[qi].cfg.name.clone();
            self.send_to(carry, target, reason, name, now, hops);
            return;
        }
        if let Some((from_name, reason)) = from {
            self.actions.push_back(AcdAction::Requeued {
                call: carry.call,
                from: from_name,
                to: self.queues[qi].cfg.name.clone(),
                reason,
            });
        }
        self.seq += 1;
        let cfg = &self.queues[qi].cfg;
        let widened = cfg.widen.as_ref().is_some_and(|w| w.after.is_zero());
        let w = Waiting {
            call: carry.call,
            queue: qi,
            priority: carry.priority,
            arrived: carry.arrived,
            entered: now,
            caller: carry.caller.clone(),
            seq: self.seq,
            offers: Vec::new(),
            skipped: Vec::new(),
            widened,
            max_wait_at: cfg.max_wait.map(|m| now + m),
            widen_at: cfg
                .widen
                .as_ref()
                .filter(|_| !widened)
                .map(|w| now + w.after),
            // The first announcement comes on entry, after this step's offers are decided.
            announce_at: cfg.announce_every.map(|_| now),
            retry_at: None,
        };
        self.arm_call_timers(&w);
        self.queues[qi].order.insert(w.key());
        self.waiting.insert(carry.call, w);
        self.entered += 1;
        self.event(
            now,
            Some(qi),
            Some(carry.call),
            None,
            QueueEventKind::Enter {
                priority: carry.priority,
                arrived: carry.arrived,
                caller: carry.caller,
            },
        );
    }

    fn arm_call_timers(&mut self, w: &Waiting) {
        if let Some(at) = w.max_wait_at {
            self.timers.insert((at, TimerKey::MaxWait(w.call)));
        }
        if let Some(at) = w.widen_at {
            self.timers.insert((at, TimerKey::Widen(w.call)));
        }
        if let Some(at) = w.announce_at {
            self.timers.insert((at, TimerKey::Announce(w.call)));
        }
        if let Some(at) = w.retry_at {
            self.timers.insert((at, TimerKey::Retry(w.call)));
        }
    }

    /// Agents who failed `call` wait the queue's `retry` before it is offered to them again.
    fn hold_retries(&mut self, call: CallRef, now: Instant) {
        let Some(w) = self.waiting.get_mut(&call) else {
            return;
        };
        if let Some(old) = w.retry_at.take() {
            self.timers.remove(&(old, TimerKey::Retry(call)));
        }
        let at = now + self.queues[w.queue].cfg.retry;
        w.retry_at = Some(at);
        self.timers.insert((at, TimerKey::Retry(call)));
    }

    /// Sends a caller who is in no queue (any more) to `target`.
    fn send_to(
        &mut self,
        carry: Carry,
        target: OverflowTarget,
        reason: OverflowReason,
        from: String,
        now: Instant,
        hops: usize,
    ) {
        match &target {
            OverflowTarget::Queue(name) => match self.queue_index.get(name) {
                Some(&qi) => self.enter(carry, qi, now, hops + 1, Some((from, reason))),
                None => self.actions.push_back(AcdAction::Overflow {
                    call: carry.call,
                    target: OverflowTarget::Hangup,
                    reason: OverflowReason::UnknownQueue,
                }),
            },
            _ => self.actions.push_back(AcdAction::Overflow {
                call: carry.call,
                target,
                reason,
            }),
        }
    }

    /// Whether any agent of the queue's skill is logged in.
    fn staffed(&self, qi: usize) -> bool {
        let skill = self.queues[qi].skill;
        self.agents
            .iter()
            .any(|a| a.state != AgentState::LoggedOut && a.skills[skill].is_some())
    }

    /// Callers of queues whose last agent logged out (or was removed) overflow.
    fn overflow_unstaffed(&mut self, now: Instant) {
        for qi in 0..self.queues.len() {
            if self.queues[qi].order.is_empty() || self.staffed(qi) {
                continue;
            }
            let calls: Vec<CallRef> = self.queues[qi].order.iter().map(|k| k.3).collect();
            for call in calls {
                self.overflow(call, OverflowReason::NoAgents, now);
            }
        }
    }

    /// Takes a waiting caller out of their queue to the queue's overflow target.
    fn overflow(&mut self, call: CallRef, reason: OverflowReason, now: Instant) {
        let Some(w) = self.remove_waiting(call, now) else {
            return;
        };
        let qi = w.queue;
        let target = self.queues[qi].cfg.overflow.clone();
        let leave = if reason == OverflowReason::MaxWait && target == OverflowTarget::Hangup {
            LeaveReason::Timeout
        } else {
            LeaveReason::Overflow(reason)
        };
        self.event(
            now,
            Some(qi),
            Some(call),
            None,
            QueueEventKind::Overflow {
                target: target.clone(),
                reason,
            },
        );
        self.leave(&w, leave, now);
        let name = self.queues[qi].cfg.name.clone();
        let carry = Carry {
            call,
            priority: w.priority,
            arrived: w.arrived,
            caller: w.caller,
        };
        self.send_to(carry, target, reason, name, now, 0);
    }

    fn leave(&mut self, w: &Waiting, reason: LeaveReason, now: Instant) {
        self.left += 1;
        self.event(
            now,
            Some(w.queue),
            Some(w.call),
            None,
            QueueEventKind::Leave {
                reason,
                waited: now.saturating_duration_since(w.entered),
            },
        );
    }

    /// Removes a waiting caller with their timers; their remaining offers are cancelled.
    fn remove_waiting(&mut self, call: CallRef, now: Instant) -> Option<Waiting> {
        let w = self.waiting.remove(&call)?;
        self.queues[w.queue].order.remove(&w.key());
        for (at, key) in [
            (w.max_wait_at, TimerKey::MaxWait(call)),
            (w.widen_at, TimerKey::Widen(call)),
            (w.announce_at, TimerKey::Announce(call)),
            (w.retry_at, TimerKey::Retry(call)),
        ] {
            if let Some(at) = at {
                self.timers.remove(&(at, key));
            }
        }
        for &(a, at) in &w.offers {
            self.timers.remove(&(at, TimerKey::Ring(call, a)));
            self.agents[a].offer = None;
            self.actions.push_back(AcdAction::CancelOffer {
                call,
                agent: self.agents[a].id.clone(),
            });
            self.event(
                now,
                Some(w.queue),
                Some(call),
                Some(a),
                QueueEventKind::OfferCancelled,
            );
            self.set_state(a, AgentState::Available, now);
        }
        Some(w)
    }

    /// Ends agent `a`'s offer of `call`, keeping the caller waiting. Returns the call's queue.
    fn end_offer(&mut self, call: CallRef, a: usize) -> Option<usize> {
        if self.agents[a].offer != Some(call) {
            return None;
        }
        self.agents[a].offer = None;
        let w = self.waiting.get_mut(&call)?;
        if let Some(pos) = w.offers.iter().position(|&(b, _)| b == a) {
            let (_, at) = w.offers.remove(pos);
            self.timers.remove(&(at, TimerKey::Ring(call, a)));
        }
        Some(w.queue)
    }

    fn call_abandoned(&mut self, call: CallRef, now: Instant) {
        if let Some(w) = self.remove_waiting(call, now) {
            let waited = now.saturating_duration_since(w.entered);
            self.event(
                now,
                Some(w.queue),
                Some(call),
                None,
                QueueEventKind::Abandon { waited },
            );
            self.leave(&w, LeaveReason::Abandoned, now);
        }
    }

    fn offer_answered(&mut self, call: CallRef, a: usize, now: Instant) {
        // A stale answer (the offer was cancelled first) is the integrator's to hang up.
        let Some(qi) = self.end_offer(call, a) else {
            return;
        };
        let Some(w) = self.remove_waiting(call, now) else {
            return;
        };
        let waited = now.saturating_duration_since(w.entered);
        self.event(
            now,
            Some(qi),
            Some(call),
            Some(a),
            QueueEventKind::Answer { waited },
        );
        self.leave(&w, LeaveReason::Answered, now);
        let cfg = &self.queues[qi].cfg;
        let agent = &mut self.agents[a];
        agent.queue_call = Some(QueueCall {
            call,
            queue: cfg.name.clone(),
            answered: now,
            wrap_up: cfg.wrap_up,
            disposition_required: !cfg.dispositions.is_empty(),
        });
        agent.answered_today += 1;
        agent.misses_in_row = 0;
        self.set_state(a, AgentState::OnCall, now);
    }

    fn offer_failed(&mut self, call: CallRef, a: usize, reason: OfferFailure, now: Instant) {
        let Some(qi) = self.end_offer(call, a) else {
            return;
        };
        if let Some(w) = self.waiting.get_mut(&call)
            && !w.skipped.contains(&a)
        {
            w.skipped.push(a);
        }
        self.hold_retries(call, now);
        self.event(
            now,
            Some(qi),
            Some(call),
            Some(a),
            QueueEventKind::OfferFailed(reason),
        );
        if reason == OfferFailure::NoAnswer {
            self.missed(a, qi, now);
        } else {
            self.set_state(a, AgentState::Available, now);
        }
    }

    fn ring_timeout(&mut self, call: CallRef, a: usize, now: Instant) {
        // The timer is already out of the table; end_offer finds nothing more to remove.
        let Some(qi) = self.end_offer(call, a) else {
            return;
        };
        if let Some(w) = self.waiting.get_mut(&call)
            && !w.skipped.contains(&a)
        {
            w.skipped.push(a);
        }
        self.hold_retries(call, now);
        self.actions.push_back(AcdAction::CancelOffer {
            call,
            agent: self.agents[a].id.clone(),
        });
        self.event(
            now,
            Some(qi),
            Some(call),
            Some(a),
            QueueEventKind::RingNoAnswer,
        );
        self.missed(a, qi, now);
    }

    /// A ring-no-answer: after the queue's limit of misses in a row, a break.
    fn missed(&mut self, a: usize, qi: usize, now: Instant) {
        self.agents[a].misses_in_row += 1;
        let limit = self.queues[qi].cfg.no_answer_break_after;
        if limit > 0 && self.agents[a].misses_in_row >= limit {
            self.set_state(
                a,
                AgentState::Break {
                    reason: NO_ANSWER_BREAK.to_string(),
                },
                now,
            );
        } else {
            self.set_state(a, AgentState::Available, now);
        }
    }

    fn call_ended(&mut self, call: CallRef, a: usize, now: Instant) {
        if self.agents[a].queue_call.as_ref().map(|c| c.call) != Some(call) {
            return;
        }
        let Some(qc) = self.agents[a].queue_call.take() else {
            return;
        };
        let talk = now.saturating_duration_since(qc.answered);
        if let Some(&qi) = self.queue_index.get(&qc.queue) {
            let h = &mut self.queues[qi].handling;
            if h.len() == HANDLING_SAMPLES {
                h.pop_front();
            }
            h.push_back(talk + qc.wrap_up);
        }
        if qc.disposition_required {
            // Owed even by an agent who logged out during the call.
            self.agents[a].owes_disposition = Some((call, qc.queue.clone()));
        }
        self.push_event(
            now,
            Some(qc.queue),
            Some(call),
            Some(self.agents[a].id.clone()),
            QueueEventKind::CallEnded { talk },
        );
        if self.agents[a].state != AgentState::OnCall {
            // Logged out during the call: the call's end changes nothing.
            return;
        }
        if qc.wrap_up.is_zero() && !qc.disposition_required {
            self.end_wrap_up(a, now);
        } else if qc.wrap_up.is_zero() {
            self.set_state(a, AgentState::WrapUp, now);
        } else {
            let until = now + qc.wrap_up;
            self.agents[a].wrap_up_until = Some(until);
            self.timers.insert((until, TimerKey::WrapUp(a)));
            self.set_state(a, AgentState::WrapUp, now);
        }
    }

    fn stop_wrap_up(&mut self, a: usize) {
        if let Some(until) = self.agents[a].wrap_up_until.take() {
            self.timers.remove(&(until, TimerKey::WrapUp(a)));
        }
    }

    /// Wrap-up over: the break asked for during the call, or available.
    fn end_wrap_up(&mut self, a: usize, now: Instant) {
        match self.agents[a].pending_break.take() {
            Some(reason) => self.set_state(a, AgentState::Break { reason }, now),
            None => {
                self.agents[a].idle_since = Some(now);
                self.set_state(a, AgentState::Available, now);
            }
        }
    }

    fn agent_break(&mut self, a: usize, reason: String, now: Instant) {
        match self.agents[a].state {
            AgentState::LoggedOut => {}
            AgentState::OnCall => self.agents[a].pending_break = Some(reason),
            AgentState::Ringing | AgentState::WrapUp => {
                self.withdraw_offer(a, now);
                self.stop_wrap_up(a);
                self.set_state(a, AgentState::Break { reason }, now);
            }
            AgentState::Available | AgentState::Break { .. } => {
                self.set_state(a, AgentState::Break { reason }, now);
            }
        }
    }

    /// Cancels the agent's offer (not their fault: logout, break, endpoint gone); the caller
    /// keeps waiting and is offered again.
    fn withdraw_offer(&mut self, a: usize, now: Instant) {
        let Some(call) = self.agents[a].offer else {
            return;
        };
        let qi = self.end_offer(call, a);
        self.actions.push_back(AcdAction::CancelOffer {
            call,
            agent: self.agents[a].id.clone(),
        });
        self.event(now, qi, Some(call), Some(a), QueueEventKind::OfferCancelled);
        self.set_state(a, AgentState::Available, now);
    }

    fn announce(&mut self, call: CallRef, now: Instant) {
        let Some(w) = self.waiting.get_mut(&call) else {
            return;
        };
        w.announce_at = None;
        let qi = w.queue;
        let ringing = !w.offers.is_empty();
        let key = w.key();
        if let Some(every) = self.queues[qi].cfg.announce_every {
            let at = now + every;
            if let Some(w) = self.waiting.get_mut(&call) {
                w.announce_at = Some(at);
            }
            self.timers.insert((at, TimerKey::Announce(call)));
        }
        // A caller whose agent is ringing is about to be connected: no announcement.
        if ringing {
            return;
        }
        let position = self.queues[qi].order.range(..key).count() + 1;
        let expected_wait = self.expected_wait(qi, position);
        self.actions.push_back(AcdAction::Announce {
            call,
            position,
            expected_wait,
        });
    }

    /// Position × average handling time ÷ staffing agents (see the module documentation).
    fn expected_wait(&self, qi: usize, position: usize) -> Option<Duration> {
        let q = &self.queues[qi];
        if q.handling.is_empty() {
            return None;
        }
        let total: Duration = q.handling.iter().sum();
        let average = total / q.handling.len() as u32;
        let staff = self
            .agents
            .iter()
            .filter(|a| {
                a.skills[q.skill].is_some()
                    && a.reachable
                    && !matches!(a.state, AgentState::LoggedOut | AgentState::Break { .. })
            })
            .count()
            .max(1);
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        let staff = u32::try_from(staff).unwrap_or(u32::MAX);
        Some(average.saturating_mul(position) / staff)
    }

    /// Offers waiting callers to free agents: callers in global service order (priority,
    /// arrival), each to the agent its queue's strategy picks among the free agents who may
    /// take it. Cost: one pass over agents per queue plus one over waiting callers, so a
    /// single agent becoming free with 1,000 callers waiting costs a sort of those callers.
    fn dispatch(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let mut free: Vec<bool> = self.agents.iter().map(Agent::offerable).collect();
        let mut n_free = free.iter().filter(|f| **f).count();
        if n_free == 0 {
            return;
        }
        let mut base = Vec::with_capacity(self.queues.len());
        let mut wide = Vec::with_capacity(self.queues.len());
        let mut candidates: Vec<(OrderKey, usize)> = Vec::new();
        for (qi, q) in self.queues.iter().enumerate() {
            let b: Vec<usize> = (0..self.agents.len())
                .filter(|&a| free[a] && self.agents[a].skills[q.skill].is_some())
                .collect();
            let w: Vec<usize> = match q.widen_skill {
                Some(ws) => (0..self.agents.len())
                    .filter(|&a| {
                        free[a]
                            && self.agents[a].skills[q.skill].is_none()
                            && self.agents[a].skills[ws].is_some()
                    })
                    .collect(),
                None => Vec::new(),
            };
            if !b.is_empty() || !w.is_empty() {
                let ring_all = q.cfg.strategy == Strategy::RingAll;
                for key in &q.order {
                    let Some(waiting) = self.waiting.get(&key.3) else {
                        continue;
                    };
                    if !waiting.offers.is_empty() && !ring_all {
                        continue;
                    }
                    if b.is_empty() && !waiting.widened {
                        continue;
                    }
                    candidates.push((*key, qi));
                }
            }
            base.push(b);
            wide.push(w);
        }
        candidates.sort_unstable();
        for (key, qi) in candidates {
            if n_free == 0 {
                break;
            }
            for a in self.choose(qi, key.3, &base[qi], &wide[qi], &free, now) {
                free[a] = false;
                n_free -= 1;
                self.offer(key.3, qi, a, now);
            }
        }
    }

    /// The agents (one, or every eligible one for ring-all) to offer `call` to: fresh agents
    /// of the queue's skill, then fresh widened agents, then those who already missed it.
    fn choose(
        &mut self,
        qi: usize,
        call: CallRef,
        base: &[usize],
        wide: &[usize],
        free: &[bool],
        now: Instant,
    ) -> Vec<usize> {
        let Some(w) = self.waiting.get(&call) else {
            return Vec::new();
        };
        let widened = w.widened;
        let retry_held = w.retry_at.is_some_and(|t| now < t);
        let strategy = self.queues[qi].cfg.strategy;
        let free_in = |set: &[usize], fresh: Option<bool>| -> Vec<usize> {
            set.iter()
                .copied()
                .filter(|&a| free[a] && fresh.is_none_or(|f| f != w.skipped.contains(&a)))
                .collect()
        };
        if strategy == Strategy::RingAll {
            let mut all = free_in(base, None);
            if widened {
                all.extend(free_in(wide, None));
            }
            if retry_held {
                // Only those who have not failed this caller ring before the retry time.
                all.retain(|a| !w.skipped.contains(a));
            }
            return all;
        }
        let empty: &[usize] = &[];
        let wide = if widened { wide } else { empty };
        let mut pool = Vec::new();
        let mut retry = false;
        for (set, fresh) in [(base, true), (wide, true), (base, false), (wide, false)] {
            pool = free_in(set, Some(fresh));
            if !pool.is_empty() {
                retry = !fresh;
                break;
            }
        }
        if pool.is_empty() || (retry && retry_held) {
            return Vec::new();
        }
        if retry && let Some(w) = self.waiting.get_mut(&call) {
            // Everyone free already missed this caller: start a new round.
            w.skipped.clear();
        }
        let q = &self.queues[qi];
        let level = |a: usize| {
            let ag = &self.agents[a];
            ag.skills[q.skill]
                .or_else(|| q.widen_skill.and_then(|s| ag.skills[s]))
                .unwrap_or(0)
        };
        let agents = &self.agents;
        let pick = match strategy {
            Strategy::LongestIdle | Strategy::RingAll => pool
                .iter()
                .copied()
                .min_by_key(|&a| (agents[a].idle_since, a)),
            Strategy::FewestCalls => pool
                .iter()
                .copied()
                .min_by_key(|&a| (agents[a].answered_today, agents[a].idle_since, a)),
            Strategy::TopDown => pool.iter().copied().min_by_key(|&a| (Reverse(level(a)), a)),
            Strategy::RoundRobin => {
                let n = agents.len();
                let start = q.rr_last.map_or(0, |l| l + 1);
                pool.iter()
                    .copied()
                    .min_by_key(|&a| (a + n - start % n) % n)
            }
            Strategy::Random => {
                let i = self.rng.random_range(0..pool.len());
                pool.get(i).copied()
            }
        };
        match pick {
            Some(a) => {
                if strategy == Strategy::RoundRobin {
                    self.queues[qi].rr_last = Some(a);
                }
                vec![a]
            }
            None => Vec::new(),
        }
    }

    fn offer(&mut self, call: CallRef, qi: usize, a: usize, now: Instant) {
        let ring_timeout = self.queues[qi].cfg.ring_timeout;
        let at = now + ring_timeout;
        let Some(w) = self.waiting.get_mut(&call) else {
            return;
        };
        w.offers.push((a, at));
        self.timers.insert((at, TimerKey::Ring(call, a)));
        self.agents[a].offer = Some(call);
        self.actions.push_back(AcdAction::Offer {
            call,
            agent: self.agents[a].id.clone(),
            queue: self.queues[qi].cfg.name.clone(),
            ring_timeout,
        });
        self.event(now, Some(qi), Some(call), Some(a), QueueEventKind::Offer);
        self.set_state(a, AgentState::Ringing, now);
    }

    fn snapshot(&self, queue: &str, now: Option<Instant>) -> Option<QueueSnapshot> {
        let qi = *self.queue_index.get(queue)?;
        let q = &self.queues[qi];
        let waiting: Vec<WaitingCaller> = q
            .order
            .iter()
            .filter_map(|k| self.waiting.get(&k.3))
            .map(|w| WaitingCaller {
                call: w.call,
                caller: w.caller.clone(),
                priority: w.priority,
                arrived: w.arrived,
                entered: w.entered,
                offered_to: w
                    .offers
                    .iter()
                    .map(|&(a, _)| self.agents[a].id.clone())
                    .collect(),
            })
            .collect();
        let now = now.or(self.now);
        let longest_wait = waiting
            .iter()
            .map(|w| w.entered)
            .min()
            .zip(now)
            .map(|(e, now)| now.saturating_duration_since(e));
        let mut s = QueueSnapshot {
            name: q.cfg.name.clone(),
            waiting,
            longest_wait,
            agents_available: 0,
            agents_ringing: 0,
            agents_on_call: 0,
            agents_wrap_up: 0,
            agents_on_break: 0,
            agents_logged_out: 0,
            agents_unreachable: 0,
        };
        for a in self.agents.iter().filter(|a| a.skills[q.skill].is_some()) {
            let n = match a.state {
                AgentState::LoggedOut => &mut s.agents_logged_out,
                AgentState::Available => &mut s.agents_available,
                AgentState::Break { .. } => &mut s.agents_on_break,
                AgentState::Ringing => &mut s.agents_ringing,
                AgentState::OnCall => &mut s.agents_on_call,
                AgentState::WrapUp => &mut s.agents_wrap_up,
            };
            *n += 1;
            if !a.reachable && a.state != AgentState::LoggedOut {
                s.agents_unreachable += 1;
            }
        }
        Some(s)
    }
}

/// What follows a caller from queue to queue.
struct Carry {
    call: CallRef,
    priority: u8,
    arrived: Instant,
    caller: String,
}

impl Agent {
    fn lines_in_use(&self) -> usize {
        usize::from(self.offer.is_some())
            + usize::from(self.queue_call.is_some())
            + self.direct_calls
    }

    /// May be offered a queue caller now.
    fn offerable(&self) -> bool {
        self.state == AgentState::Available
            && self.reachable
            && self.offer.is_none()
            && self.queue_call.is_none()
            && self.lines_in_use() < self.lines
    }
}
