//! The interpreter: one [`Session`] per call in a flow. See the module docs in `ivr/mod.rs`
//! for the driving loop and the contract with the call actor.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::flow::{
    Collect, Flow, FlowSet, LookupBy, Menu, Node, NodeId, RouteTo, is_dtmf, is_external_number,
    is_name,
};

/// Node transitions allowed without waiting for the caller, the media or the lead store.
/// A flow that passes more (set → route to flow → set → ...) loops, and the call is hung up
/// instead of spinning the actor.
pub const MAX_STEPS_WITHOUT_EVENT: usize = 64;
/// Digits kept for type-ahead; more are dropped (a caller leaning on a key is not input).
pub const MAX_TYPEAHEAD: usize = 32;
/// Longest value a `set` node may store (longer is cut at a character boundary).
pub const MAX_VARIABLE_LEN: usize = 1024;

/// The current time, passed in by the driver: timers use `mono`, business hours use `wall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

/// What the IVR knows about the call when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallContext {
    /// The caller's number (From user), used by `lookup` with `by = "caller"`.
    pub caller: String,
    /// The dialed number (DID).
    pub dialed: String,
}

/// Input from the call actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The last [`Action::Play`] played to its end (not sent for a stopped or replaced play).
    PromptFinished,
    /// A DTMF key: `0`-`9`, `*`, `#`, `A`-`D`; anything else is ignored.
    Digit(char),
    /// The answer to an [`Action::LookupLead`]; one per lookup, in order.
    LeadLookup(Option<LeadMatch>),
}

/// A lead found by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadMatch {
    pub lead_id: i64,
    pub name: String,
    pub grade: Option<String>,
    pub owner_agent: Option<String>,
}

/// What to look a lead up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadQuery {
    /// The caller's number (primary and alternate phones).
    CallerNumber(String),
    /// Digits the caller entered (a customer number or tax ID).
    Digits(String),
}

/// Where a finished IVR sends the call. Jumps to another flow are not here: the session
/// follows them itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An ACD queue; a higher priority is served first.
    Queue { name: String, priority: u8 },
    /// An agent by extension.
    Agent(String),
    /// A voicemail box.
    Voicemail(String),
    /// An external number through the trunk (`+`? and digits).
    External(String),
}

/// Output for the call actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these files one after the other, replacing anything playing. With `barge_in`, a
    /// digit will stop it (the session then emits [`Action::StopPlay`]). Paths are absolute.
    Play {
        prompts: Vec<PathBuf>,
        barge_in: bool,
    },
    /// Stop the current play now; no [`Event::PromptFinished`] is expected for it.
    StopPlay,
    /// Look the lead up and answer with [`Event::LeadLookup`].
    LookupLead(LeadQuery),
    /// Terminal: the IVR is done, send the call here.
    Route(Destination),
    /// Terminal: end the call.
    Hangup,
}

/// Starting a session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no IVR flow named {0:?}")]
    UnknownFlow(String),
}

/// Where the session waits.
#[derive(Debug)]
enum State {
    /// A play node's prompts are playing.
    Play {
        next: NodeId,
        barge_in: bool,
    },
    Menu {
        attempt: u8,
        prompting: bool,
    },
    Collect {
        attempt: u8,
        prompting: bool,
        digits: String,
    },
    Lookup {
        found: NodeId,
        not_found: NodeId,
    },
    /// A hangup node's prompts are playing.
    HangupPlay,
    /// A terminal action was emitted.
    Ended,
}

enum Step {
    /// Waiting for an event or the deadline.
    Wait,
    Goto(NodeId),
    /// A terminal action was emitted.
    Done,
}

/// One call's walk through the flows. Sans-IO: events and time in, actions out.
#[derive(Debug)]
pub struct Session {
    set: Arc<FlowSet>,
    flow: Arc<Flow>,
    node: NodeId,
    state: State,
    deadline: Option<Instant>,
    vars: BTreeMap<String, String>,
    typeahead: VecDeque<char>,
    actions: VecDeque<Action>,
    /// Lookups that timed out and whose answers are still to come (answers arrive in order).
    stale_lookups: u32,
    error: Option<String>,
}

impl Session {
    /// Starts a call in flow `flow` of `set`; the first actions are ready in
    /// [`Session::poll_action`]. The session keeps `set` for jumps to other flows, so a
    /// reload does not change a call already in the IVR.
    pub fn new(
        set: Arc<FlowSet>,
        flow: &str,
        ctx: CallContext,
        now: Now,
    ) -> Result<Session, SessionError> {
        let flow = set
            .get(flow)
            .ok_or_else(|| SessionError::UnknownFlow(flow.to_string()))?;
        let start = flow.start;
        let mut vars = BTreeMap::new();
        vars.insert("caller".to_string(), ctx.caller);
        vars.insert("dialed".to_string(), ctx.dialed);
        let mut s = Session {
            set,
            flow,
            node: start,
            state: State::Ended,
            deadline: None,
            vars,
            typeahead: VecDeque::new(),
            actions: VecDeque::new(),
            stale_lookups: 0,
            error: None,
        };
        s.goto(start, now);
        Ok(s)
    }

    /// Feeds one event. Events that do not fit the current node are ignored (a late
    /// `PromptFinished`, a digit during a goodbye), digits are kept for type-ahead.
    pub fn handle(&mut self, event: Event, now: Now) {
        if self.is_ended() {
            return;
        }
        let flow = Arc::clone(&self.flow);
        let node = flow.node(self.node);
        let step = match event {
            Event::Digit(d) if !is_dtmf(d) => Step::Wait,
            Event::Digit(d) => self.on_digit(&flow, node, d, now),
            Event::PromptFinished => self.on_prompt_finished(&flow, node, now),
            Event::LeadLookup(result) => self.on_lookup(result),
        };
        self.follow(step, now);
    }

    /// Runs whatever timer is due at `now` (nothing if none is).
    pub fn handle_timeout(&mut self, now: Now) {
        match self.deadline {
            Some(d) if now.mono >= d && !self.is_ended() => {}
            _ => return,
        }
        self.deadline = None;
        let flow = Arc::clone(&self.flow);
        let node = flow.node(self.node);
        let step = self.on_timeout(&flow, node, now);
        self.follow(step, now);
    }

    /// When to call [`Session::handle_timeout`]; `None` once ended. While the session is
    /// not ended there is always a deadline: every wait has a timeout or a guard.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_ended() { None } else { self.deadline }
    }

    /// The next action, in order; drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Call variables: `caller`, `dialed`, what `set` and `collect` nodes stored, and after a
    /// successful lookup `lead_id`, `lead_name`, `lead_grade`, `lead_owner`.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Whether a terminal action (route or hang-up) was emitted.
    pub fn is_ended(&self) -> bool {
        matches!(self.state, State::Ended)
    }

    /// Why the session hung up on its own, when it was a flow fault (a loop), not a node.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The current flow and node names (for logs and call records).
    pub fn position(&self) -> (&str, &str) {
        (self.flow.name(), self.flow.node_name(self.node))
    }

    fn follow(&mut self, step: Step, now: Now) {
        if let Step::Goto(next) = step {
            self.goto(next, now);
        }
    }

    /// Enters `next` and every node after it that does not wait.
    fn goto(&mut self, mut next: NodeId, now: Now) {
        for _ in 0..MAX_STEPS_WITHOUT_EVENT {
            self.node = next;
            let flow = Arc::clone(&self.flow);
            match self.enter(&flow, next, now) {
                Step::Goto(n) => next = n,
                Step::Wait | Step::Done => return,
            }
        }
        let (f, n) = self.position();
        let msg = format!(
            "flow {f:?} node {n:?}: {MAX_STEPS_WITHOUT_EVENT} nodes passed without waiting for \
             the caller (a loop in the flows)"
        );
        self.error = Some(msg);
        self.finish(Action::Hangup);
    }

    fn enter(&mut self, flow: &Flow, id: NodeId, now: Now) -> Step {
        match flow.node(id) {
            Node::Play {
                prompts,
                barge_in,
                next,
            } => {
                // Type-ahead skips a prompt the caller may interrupt anyway.
                if *barge_in && !self.typeahead.is_empty() {
                    return Step::Goto(*next);
                }
                self.play(prompts.clone(), *barge_in);
                self.state = State::Play {
                    next: *next,
                    barge_in: *barge_in,
                };
                self.deadline = Some(now.mono + flow.max_prompt);
                Step::Wait
            }
            Node::Menu(m) => self.menu_prompt(flow, m, 0, &[], now),
            Node::Collect(c) => self.collect_prompt(flow, c, 0, &[], now),
            Node::Lookup {
                by,
                found,
                not_found,
            } => {
                let query = match by {
                    LookupBy::Caller => LeadQuery::CallerNumber(self.var("caller")),
                    LookupBy::Variable(v) => LeadQuery::Digits(self.var(v)),
                };
                let (LeadQuery::CallerNumber(key) | LeadQuery::Digits(key)) = &query;
                if key.is_empty() {
                    // Nothing to look up by (anonymous caller, skipped input): not found.
                    self.clear_lead();
                    return Step::Goto(*not_found);
                }
                self.actions.push_back(Action::LookupLead(query));
                self.state = State::Lookup {
                    found: *found,
                    not_found: *not_found,
                };
                self.deadline = Some(now.mono + flow.lookup_timeout);
                Step::Wait
            }
            Node::Hours {
                hours,
                open,
                closed,
            } => Step::Goto(if hours.is_open(now.wall) {
                *open
            } else {
                *closed
            }),
            Node::Set {
                variable,
                value,
                next,
            } => {
                let mut v = value.render(&self.vars);
                truncate(&mut v, MAX_VARIABLE_LEN);
                self.vars.insert(variable.clone(), v);
                Step::Goto(*next)
            }
            Node::Route { to, fallback } => self.route(to, *fallback),
            Node::Hangup { prompts } => {
                if prompts.is_empty() {
                    return self.finish(Action::Hangup);
                }
                self.play(prompts.clone(), false);
                self.state = State::HangupPlay;
                self.deadline = Some(now.mono + flow.max_prompt);
                Step::Wait
            }
        }
    }

    fn route(&mut self, to: &RouteTo, fallback: Option<NodeId>) -> Step {
        let dest = match to {
            RouteTo::Flow(name) => {
                return match self.set.get(name) {
                    Some(f) => {
                        let start = f.start;
                        self.flow = f;
                        Step::Goto(start)
                    }
                    // The set was validated as a whole, so this is a broken invariant; the
                    // call still ends cleanly.
                    None => {
                        self.error = Some(format!("route to unknown flow {name:?}"));
                        self.finish(Action::Hangup)
                    }
                };
            }
            RouteTo::Queue { name, priority } => {
                let name = name.render(&self.vars);
                is_name(&name).then_some(Destination::Queue {
                    name,
                    priority: *priority,
                })
            }
            RouteTo::Agent(t) => Some(t.render(&self.vars))
                .filter(|n| is_name(n))
                .map(Destination::Agent),
            RouteTo::Voicemail(t) => Some(t.render(&self.vars))
                .filter(|n| is_name(n))
                .map(Destination::Voicemail),
            RouteTo::External(t) => Some(t.render(&self.vars))
                .filter(|n| is_external_number(n))
                .map(Destination::External),
        };
        match (dest, fallback) {
            (Some(d), _) => self.finish(Action::Route(d)),
            (None, Some(n)) => Step::Goto(n),
            // Load validation requires a fallback for targets built from variables, and
            // static targets are checked there; kept total rather than trusted.
            (None, None) => {
                self.error = Some("route target came out empty or malformed".into());
                self.finish(Action::Hangup)
            }
        }
    }

    fn on_digit(&mut self, flow: &Flow, node: &Node, d: char, now: Now) -> Step {
        match (&mut self.state, node) {
            (State::Play { next, barge_in }, _) => {
                let (next, barge_in) = (*next, *barge_in);
                self.push_typeahead(d);
                if barge_in {
                    self.actions.push_back(Action::StopPlay);
                    Step::Goto(next)
                } else {
                    Step::Wait
                }
            }
            (State::Menu { attempt, prompting }, Node::Menu(m)) => {
                let attempt = *attempt;
                if *prompting {
                    if !m.barge_in {
                        self.push_typeahead(d);
                        return Step::Wait;
                    }
                    self.actions.push_back(Action::StopPlay);
                    *prompting = false;
                }
                self.menu_choose(flow, m, attempt, d, now)
            }
            (State::Collect { prompting, .. }, Node::Collect(c)) => {
                if *prompting {
                    if !c.barge_in {
                        self.push_typeahead(d);
                        return Step::Wait;
                    }
                    self.actions.push_back(Action::StopPlay);
                    *prompting = false;
                }
                self.collect_digit(flow, c, d, now)
            }
            (State::Lookup { .. }, _) => {
                self.push_typeahead(d);
                Step::Wait
            }
            // A goodbye is not interrupted; nothing after it needs the digit.
            _ => Step::Wait,
        }
    }

    fn on_prompt_finished(&mut self, flow: &Flow, node: &Node, now: Now) -> Step {
        match (&mut self.state, node) {
            (State::Play { next, .. }, _) => Step::Goto(*next),
            (State::HangupPlay, _) => self.finish(Action::Hangup),
            (
                State::Menu {
                    attempt,
                    prompting: prompting @ true,
                },
                Node::Menu(m),
            ) => {
                *prompting = false;
                let attempt = *attempt;
                match self.typeahead.pop_front() {
                    Some(d) => self.menu_choose(flow, m, attempt, d, now),
                    None => {
                        // The menu timeout starts when the prompt has been heard.
                        self.deadline = Some(now.mono + m.timeout);
                        Step::Wait
                    }
                }
            }
            (
                State::Collect {
                    prompting: prompting @ true,
                    ..
                },
                Node::Collect(c),
            ) => {
                *prompting = false;
                self.deadline = Some(now.mono + c.first_digit_timeout);
                self.collect_typeahead(flow, c, now)
            }
            // Not playing (a report after StopPlay, or a duplicate): nothing to do.
            _ => Step::Wait,
        }
    }

    fn on_lookup(&mut self, result: Option<LeadMatch>) -> Step {
        if self.stale_lookups > 0 {
            // The answer to a lookup we already gave up on.
            self.stale_lookups -= 1;
            return Step::Wait;
        }
        let State::Lookup { found, not_found } = self.state else {
            return Step::Wait;
        };
        match result {
            Some(lead) => {
                self.vars.insert("lead_id".into(), lead.lead_id.to_string());
                self.vars.insert("lead_name".into(), lead.name);
                self.set_or_remove("lead_grade", lead.grade);
                self.set_or_remove("lead_owner", lead.owner_agent);
                Step::Goto(found)
            }
            None => {
                self.clear_lead();
                Step::Goto(not_found)
            }
        }
    }

    fn on_timeout(&mut self, flow: &Flow, node: &Node, now: Now) -> Step {
        match (&mut self.state, node) {
            // A prompt whose end was never reported: stop it and carry on as if it ended.
            (State::Play { .. } | State::HangupPlay, _)
            | (
                State::Menu {
                    prompting: true, ..
                },
                _,
            )
            | (
                State::Collect {
                    prompting: true, ..
                },
                _,
            ) => {
                self.actions.push_back(Action::StopPlay);
                self.on_prompt_finished(flow, node, now)
            }
            (State::Menu { attempt, .. }, Node::Menu(m)) => {
                let attempt = *attempt;
                self.menu_retry(flow, m, attempt, &m.no_input_prompts, now)
            }
            (
                State::Collect {
                    attempt, digits, ..
                },
                Node::Collect(c),
            ) => {
                let attempt = *attempt;
                if digits.is_empty() {
                    self.collect_retry(flow, c, attempt, &c.no_input_prompts, now)
                } else {
                    // The inter-digit timeout ends the input like a terminator.
                    self.collect_end(flow, c, now)
                }
            }
            (State::Lookup { not_found, .. }, _) => {
                let not_found = *not_found;
                self.stale_lookups = self.stale_lookups.saturating_add(1);
                self.clear_lead();
                Step::Goto(not_found)
            }
            // State and node always agree (both set by `enter`); a mismatch ends the call.
            _ => {
                self.error = Some("internal: timer in an unexpected state".into());
                self.finish(Action::Hangup)
            }
        }
    }

    // --- menu ---

    fn menu_prompt(
        &mut self,
        flow: &Flow,
        m: &Menu,
        attempt: u8,
        before: &[PathBuf],
        now: Now,
    ) -> Step {
        self.state = State::Menu {
            attempt,
            prompting: false,
        };
        if m.barge_in
            && let Some(d) = self.typeahead.pop_front()
        {
            return self.menu_choose(flow, m, attempt, d, now);
        }
        let prompts: Vec<PathBuf> = before.iter().chain(&m.prompts).cloned().collect();
        if prompts.is_empty() {
            self.deadline = Some(now.mono + m.timeout);
        } else {
            self.play(prompts, m.barge_in);
            self.state = State::Menu {
                attempt,
                prompting: true,
            };
            self.deadline = Some(now.mono + flow.max_prompt);
        }
        Step::Wait
    }

    fn menu_choose(&mut self, flow: &Flow, m: &Menu, attempt: u8, d: char, now: Now) -> Step {
        match m.choices.iter().find(|(c, _)| *c == d) {
            Some((_, next)) => Step::Goto(*next),
            None => {
                // Keys typed ahead after a wrong one are not a choice the caller meant.
                self.typeahead.clear();
                self.menu_retry(flow, m, attempt, &m.invalid_prompts, now)
            }
        }
    }

    fn menu_retry(
        &mut self,
        flow: &Flow,
        m: &Menu,
        attempt: u8,
        before: &[PathBuf],
        now: Now,
    ) -> Step {
        if attempt >= m.retries {
            return self.fail_to(m.fail);
        }
        self.menu_prompt(flow, m, attempt + 1, before, now)
    }

    // --- collect ---

    fn collect_prompt(
        &mut self,
        flow: &Flow,
        c: &Collect,
        attempt: u8,
        before: &[PathBuf],
        now: Now,
    ) -> Step {
        self.state = State::Collect {
            attempt,
            prompting: false,
            digits: String::new(),
        };
        if c.barge_in && !self.typeahead.is_empty() {
            self.deadline = Some(now.mono + c.first_digit_timeout);
            return self.collect_typeahead(flow, c, now);
        }
        let prompts: Vec<PathBuf> = before.iter().chain(&c.prompts).cloned().collect();
        if prompts.is_empty() {
            self.deadline = Some(now.mono + c.first_digit_timeout);
        } else {
            self.play(prompts, c.barge_in);
            self.state = State::Collect {
                attempt,
                prompting: true,
                digits: String::new(),
            };
            self.deadline = Some(now.mono + flow.max_prompt);
        }
        Step::Wait
    }

    /// Feeds buffered digits until the input is complete or they run out.
    fn collect_typeahead(&mut self, flow: &Flow, c: &Collect, now: Now) -> Step {
        while let Some(d) = self.typeahead.pop_front() {
            match self.collect_digit(flow, c, d, now) {
                Step::Wait => {}
                done => return done,
            }
        }
        Step::Wait
    }

    fn collect_digit(&mut self, flow: &Flow, c: &Collect, d: char, now: Now) -> Step {
        let State::Collect {
            attempt, digits, ..
        } = &mut self.state
        else {
            return Step::Wait;
        };
        let attempt = *attempt;
        if Some(d) == c.terminator {
            return self.collect_end(flow, c, now);
        }
        if !d.is_ascii_digit() {
            self.typeahead.clear();
            return self.collect_retry(flow, c, attempt, &c.invalid_prompts, now);
        }
        digits.push(d);
        if digits.len() >= c.max_digits {
            return self.collect_end(flow, c, now);
        }
        self.deadline = Some(now.mono + c.inter_digit_timeout);
        Step::Wait
    }

    fn collect_end(&mut self, flow: &Flow, c: &Collect, now: Now) -> Step {
        let State::Collect {
            attempt, digits, ..
        } = &mut self.state
        else {
            return Step::Wait;
        };
        if digits.len() >= c.min_digits {
            let value = std::mem::take(digits);
            self.vars.insert(c.variable.clone(), value);
            return Step::Goto(c.next);
        }
        let attempt = *attempt;
        self.typeahead.clear();
        self.collect_retry(flow, c, attempt, &c.invalid_prompts, now)
    }

    fn collect_retry(
        &mut self,
        flow: &Flow,
        c: &Collect,
        attempt: u8,
        before: &[PathBuf],
        now: Now,
    ) -> Step {
        if attempt >= c.retries {
            return self.fail_to(c.fail);
        }
        self.collect_prompt(flow, c, attempt + 1, before, now)
    }

    // --- helpers ---

    /// Out of retries: the node's `fail` target, or hang up when it has none.
    fn fail_to(&mut self, fail: Option<NodeId>) -> Step {
        match fail {
            Some(n) => Step::Goto(n),
            None => self.finish(Action::Hangup),
        }
    }

    fn finish(&mut self, action: Action) -> Step {
        self.actions.push_back(action);
        self.state = State::Ended;
        self.deadline = None;
        Step::Done
    }

    fn play(&mut self, prompts: Vec<PathBuf>, barge_in: bool) {
        self.actions.push_back(Action::Play { prompts, barge_in });
    }

    fn push_typeahead(&mut self, d: char) {
        if self.typeahead.len() < MAX_TYPEAHEAD {
            self.typeahead.push_back(d);
        }
    }

    fn var(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_default()
    }

    fn set_or_remove(&mut self, name: &str, value: Option<String>) {
        match value {
            Some(v) => self.vars.insert(name.to_string(), v),
            None => self.vars.remove(name),
        };
    }

    /// A lookup that found nothing leaves no lead from an earlier lookup behind.
    fn clear_lead(&mut self) {
        for k in ["lead_id", "lead_name", "lead_grade", "lead_owner"] {
            self.vars.remove(k);
        }
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
