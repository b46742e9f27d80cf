//! The calls in progress, for the API and the supervisors' view: each call actor keeps its
//! entry current and takes it out when the call ends; the API reaches a call's actor through
//! it (pause the recording, ...).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use super::actor::CallEvent;
use super::{Call, CallKey, State};

/// One call as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCall {
    pub id: u64,
    /// The caller's number (From user).
    pub caller: String,
    pub dialed: String,
    /// The agent (or external number) the caller talks to or is being put through to.
    pub agent: Option<String>,
    /// The IVR flows, queues and voicemail boxes the call went through, in order.
    pub services: Vec<String>,
    pub offered_at_ms: i64,
    /// The customer talks to somebody (an agent, a transferred-to party).
    pub connected: bool,
    pub recording: bool,
    pub recording_paused: bool,
    /// `setup`, `ringing`, `ivr`, `queued`, `voicemail`, `talking`, `on_hold`,
    /// `transferring`, `monitoring` (a supervisor's own call), `ending`.
    pub state: &'static str,
    /// The last queue the call went through.
    pub queue: Option<String>,
    /// When the customer was first put through to somebody.
    pub connected_at_ms: Option<i64>,
    /// The lead the caller was matched to.
    pub lead: Option<LiveLead>,
    /// Supervisors monitoring the call: their calls and modes.
    pub monitors: Vec<LiveMonitor>,
    /// For a supervisor's own call: who monitors which agent, in which mode.
    pub monitoring: Option<LiveMonitoring>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveMonitoring {
    pub supervisor: String,
    pub agent: String,
    pub mode: Option<super::monitor::MonitorMode>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveLead {
    pub id: i64,
    pub name: String,
    pub grade: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveMonitor {
    pub call: u64,
    pub mode: super::monitor::MonitorMode,
}

impl LiveCall {
    /// The agent in this call and their side: the agent it is put through to, else the one
    /// who placed it (an outbound call: `agent` is then the customer's number).
    pub fn staff(&self, is_agent: impl Fn(&str) -> bool) -> Option<(&str, super::Side)> {
        match self.agent.as_deref() {
            Some(a) if is_agent(a) => Some((a, super::Side::Agent)),
            _ if is_agent(&self.caller) => Some((&self.caller, super::Side::Caller)),
            _ => None,
        }
    }
}

/// Each live call and its actor's inbox.
type Entries = HashMap<CallKey, (LiveCall, mpsc::Sender<CallEvent>)>;

/// The registry of live calls.
#[derive(Clone, Default)]
pub struct LiveCalls {
    calls: Arc<Mutex<Entries>>,
}

impl LiveCalls {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CallKey, (LiveCall, mpsc::Sender<CallEvent>)>> {
        // A panic while holding the lock cannot leave the map half-written (single inserts).
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn update(&self, key: CallKey, call: LiveCall, inbox: &mpsc::Sender<CallEvent>) {
        self.lock().insert(key, (call, inbox.clone()));
    }

    pub fn remove(&self, key: CallKey) {
        self.lock().remove(&key);
    }

    /// Every live call, oldest first.
    pub fn list(&self) -> Vec<LiveCall> {
        let mut v: Vec<LiveCall> = self.lock().values().map(|(c, _)| c.clone()).collect();
        v.sort_by_key(|c| (c.offered_at_ms, c.id));
        v
    }

    /// The connected call `agent` talks in now, and their side in it: a call put through to
    /// them (agent side), else one they placed (caller side); the newest when there are
    /// several (a call on hold and a second line).
    pub fn agent_call(&self, agent: &str) -> Option<(CallKey, super::Side)> {
        let calls = self.lock();
        let mut found: Vec<(&LiveCall, super::Side)> = calls
            .values()
            .filter(|(c, _)| c.connected)
            .filter_map(|(c, _)| {
                if c.agent.as_deref() == Some(agent) {
                    Some((c, super::Side::Agent))
                } else if c.caller == agent {
                    Some((c, super::Side::Caller))
                } else {
                    None
                }
            })
            .collect();
        found.sort_by_key(|(c, side)| (*side == super::Side::Agent, c.offered_at_ms, c.id));
        found.last().map(|(c, side)| (CallKey(c.id), *side))
    }

    /// The actor inbox of a live call.
    pub fn inbox(&self, key: CallKey) -> Option<mpsc::Sender<CallEvent>> {
        self.lock().get(&key).map(|(_, tx)| tx.clone())
    }
}

impl Call {
    /// What the API shows of this call.
    pub fn live(&self, recording_paused: bool) -> LiveCall {
        let (caller, dialed) = self.caller_and_dialed();
        let agent = self.record.target.as_ref().map(|t| match t {
            super::Target::Agent { extension, .. } | super::Target::Browser { extension, .. } => {
                extension.clone()
            }
            super::Target::Trunk { number, .. } => number.clone(),
        });
        LiveCall {
            id: self.key.0,
            caller,
            dialed,
            agent,
            services: self.record.services.clone(),
            offered_at_ms: self.record.offered_at_ms,
            connected: self.agent.bridged && matches!(self.state, State::Talking | State::Hosted),
            recording: self.rec_active(),
            recording_paused,
            state: self.live_state(),
            queue: self
                .record
                .services
                .iter()
                .rev()
                .find_map(|s| s.strip_prefix("queue:"))
                .map(str::to_string),
            // A relayed call is connected when answered; a hosted one when put through.
            connected_at_ms: self
                .record
                .connect_after
                .or(self.record.answer_after.filter(|_| self.hosted.is_none()))
                .map(|d| self.record.offered_at_ms + d.as_millis() as i64),
            lead: None,
            monitors: self.monitors_live(),
            monitoring: None,
        }
    }

    /// The call's state as the supervisors' wall shows it; `service` for a hosted call not
    /// put through, which its host names better ([`super::host::Host::activity`]).
    fn live_state(&self) -> &'static str {
        match self.state {
            State::Preparing => "setup",
            State::Ringing => "ringing",
            State::Talking | State::Hosted if self.agent.bridged => {
                if self.on_hold.is_some() {
                    "on_hold"
                } else {
                    "talking"
                }
            }
            State::Talking | State::Hosted => "service",
            State::Ending | State::Ended => "ending",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Side;

    fn call(id: u64, caller: &str, agent: Option<&str>, at: i64, connected: bool) -> LiveCall {
        LiveCall {
            id,
            caller: caller.into(),
            dialed: String::new(),
            agent: agent.map(str::to_string),
            services: Vec::new(),
            offered_at_ms: at,
            connected,
            recording: false,
            recording_paused: false,
            state: "talking",
            queue: None,
            connected_at_ms: None,
            lead: None,
            monitors: Vec::new(),
            monitoring: None,
        }
    }

    #[test]
    fn an_agents_call_is_the_newest_connected_one_put_through_to_them() {
        let live = LiveCalls::default();
        let (tx, _rx) = mpsc::channel(1);
        assert_eq!(live.agent_call("1001"), None);
        live.update(CallKey(1), call(1, "+4930", Some("1001"), 10, true), &tx);
        live.update(CallKey(2), call(2, "+4931", Some("1001"), 20, true), &tx);
        live.update(CallKey(3), call(3, "+4932", Some("1001"), 30, false), &tx);
        live.update(CallKey(4), call(4, "1002", Some("+4933"), 40, true), &tx);
        assert_eq!(live.agent_call("1001"), Some((CallKey(2), Side::Agent)));
        assert_eq!(live.agent_call("1002"), Some((CallKey(4), Side::Caller)));
        live.remove(CallKey(2));
        assert_eq!(live.agent_call("1001"), Some((CallKey(1), Side::Agent)));
        assert_eq!(live.agent_call("2001"), None);
    }

    #[test]
    fn the_staff_of_a_call_is_its_agent_else_the_agent_who_placed_it() {
        let agents = |x: &str| x.starts_with("10");
        let inbound = call(1, "+4930", Some("1001"), 10, true);
        assert_eq!(inbound.staff(agents), Some(("1001", Side::Agent)));
        let placed = call(2, "1002", Some("+4933"), 20, true);
        assert_eq!(placed.staff(agents), Some(("1002", Side::Caller)));
        let ivr = call(3, "+4930", None, 30, false);
        assert_eq!(ivr.staff(agents), None);
    }
}
