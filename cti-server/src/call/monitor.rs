//! Live supervision: a supervisor's call listens to, whispers to or barges into an agent's
//! call. Two calls take part, talking through [`Linked`] messages:
//!
//! - the *monitor* call is the supervisor's own (a hosted call to the feature code): it asks
//!   the agent's call to take its media leg in ([`Call::monitor`]), switches modes
//!   ([`Call::set_monitor_mode`]) and says when the supervisor hangs up;
//! - the *monitored* call puts that leg in its room and sets who hears it: the supervisor
//!   hears both parties in every mode; the agent hears the supervisor when whispering or
//!   barging; the customer only when barging. The call's recording takes what the customer
//!   says and hears, so a whisper never reaches it and a barge does; what the supervisor
//!   says goes to a track of its own beside it (when the call is recorded).
//!
//! Nothing of the monitored call changes: its parties stay where they are, in the same room
//! on the same engine clock, and the supervisor's leg leaves without a trace. When the
//! monitored call ends, or its agent leaves it (a transfer), the monitor call is told and
//! hangs up.

use media::engine::LegId;
use serde::Serialize;

use super::{Call, CallKey, EndCause, Linked, MediaOp, Notice, Output, Side, SipCommand, State};

/// What the supervisor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorMode {
    /// Hears both parties, heard by nobody.
    Listen,
    /// Hears both parties, heard by the agent only.
    Whisper,
    /// A three-way call: hears and is heard by both.
    Barge,
}

impl MonitorMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    /// The supervisor's key for a mode: 1 listen, 2 whisper, 3 barge.
    pub fn from_key(key: char) -> Option<MonitorMode> {
        match key {
            '1' => Some(MonitorMode::Listen),
            '2' => Some(MonitorMode::Whisper),
            '3' => Some(MonitorMode::Barge),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<MonitorMode> {
        match s {
            "listen" => Some(MonitorMode::Listen),
            "whisper" => Some(MonitorMode::Whisper),
            "barge" => Some(MonitorMode::Barge),
            _ => None,
        }
    }
}

/// A supervisor in this call.
#[derive(Debug, Clone, PartialEq)]
struct Watcher {
    monitor: CallKey,
    leg: LegId,
    agent_side: Side,
    mode: MonitorMode,
}

/// The call this one (a supervisor's) monitors.
#[derive(Debug, Clone, PartialEq)]
struct Watching {
    target: CallKey,
    mode: MonitorMode,
}

#[derive(Debug, Default)]
pub(super) struct Monitors {
    watching: Option<Watching>,
    watchers: Vec<Watcher>,
}

/// The monitor call's side.
impl Call {
    /// Monitors `target`, whose agent is on `agent_side` there, starting in `mode`. The answer
    /// comes as [`Notice::MonitorStarted`], or [`Notice::MonitorOver`] and the call ends.
    pub fn monitor(&mut self, target: CallKey, agent_side: Side, mode: MonitorMode) {
        if self.state != State::Hosted || self.monitors.watching.is_some() {
            return;
        }
        self.monitors.watching = Some(Watching { target, mode });
        self.sip(SipCommand::Tell {
            to: target,
            msg: Linked::MonitorRequest {
                monitor: self.key,
                leg: self.caller.leg,
                agent_side,
                mode,
            },
        });
    }

    /// Switches the supervisor to `mode`, in place: false when not monitoring.
    pub fn set_monitor_mode(&mut self, mode: MonitorMode) -> bool {
        let key = self.key;
        let Some(w) = self.monitors.watching.as_mut() else {
            return false;
        };
        w.mode = mode;
        let to = w.target;
        self.sip(SipCommand::Tell {
            to,
            msg: Linked::MonitorMode { monitor: key, mode },
        });
        true
    }

    /// The mode the supervisor is in, while monitoring.
    pub fn monitor_mode(&self) -> Option<MonitorMode> {
        self.monitors.watching.as_ref().map(|w| w.mode)
    }
}

/// The monitored call's side, and the messages of both.
impl Call {
    /// A monitor message; false when `msg` is not one.
    pub(super) fn on_monitor_linked(&mut self, now: std::time::Instant, msg: &Linked) -> bool {
        match *msg {
            Linked::MonitorRequest {
                monitor,
                leg,
                agent_side,
                mode,
            } => self.monitor_requested(monitor, leg, agent_side, mode),
            Linked::MonitorMode { monitor, mode } => {
                if let Some(i) = self.watcher(monitor) {
                    self.monitors.watchers[i].mode = mode;
                    let w = self.monitors.watchers[i].clone();
                    self.monitor_media(&w);
                    tracing::info!(call = %self.key, %monitor, mode = mode.as_str(), "monitor mode");
                }
            }
            Linked::MonitorEnded { monitor } => {
                if let Some(i) = self.watcher(monitor) {
                    let w = self.monitors.watchers.remove(i);
                    self.media(MediaOp::StopTrack {
                        leg: w.leg,
                        monitor,
                    });
                    self.media(MediaOp::Leave { leg: w.leg });
                    tracing::info!(call = %self.key, %monitor, "monitor ended by the supervisor");
                }
            }
            Linked::MonitorStarted => {
                if self.monitors.watching.is_some() {
                    self.out.push_back(Output::Notice(Notice::MonitorStarted));
                }
            }
            Linked::MonitorOver { code, reason } => {
                if self.monitors.watching.take().is_some() {
                    tracing::info!(call = %self.key, code, reason, "monitor over");
                    self.out
                        .push_back(Output::Notice(Notice::MonitorOver { code, reason }));
                    let cause = if code == 200 {
                        EndCause::Completed
                    } else {
                        EndCause::Failed
                    };
                    self.end(now, cause, None);
                }
            }
            _ => return false,
        }
        true
    }

    /// The supervisors on this call, for the live view.
    pub(super) fn monitors_live(&self) -> Vec<super::live::LiveMonitor> {
        self.monitors
            .watchers
            .iter()
            .map(|w| super::live::LiveMonitor {
                call: w.monitor.0,
                mode: w.mode,
            })
            .collect()
    }

    fn watcher(&self, monitor: CallKey) -> Option<usize> {
        self.monitors
            .watchers
            .iter()
            .position(|w| w.monitor == monitor)
    }

    fn monitor_requested(
        &mut self,
        monitor: CallKey,
        leg: LegId,
        agent_side: Side,
        mode: MonitorMode,
    ) {
        let refusal = if !self.both_connected() {
            Some((
                480,
                "Temporarily Unavailable (the agent's call is not connected)",
            ))
        } else if self.watcher(monitor).is_some() {
            Some((482, "Loop Detected"))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            self.sip(SipCommand::Tell {
                to: monitor,
                msg: Linked::MonitorOver { code, reason },
            });
            return;
        }
        let w = Watcher {
            monitor,
            leg,
            agent_side,
            mode,
        };
        self.monitor_media(&w);
        // What the supervisor says goes to a track of its own: a whisper is heard by the
        // agent only, so the call's recording never has it.
        self.start_track(leg, monitor);
        self.monitors.watchers.push(w);
        self.record.services.push(format!("monitored:{monitor}"));
        tracing::info!(call = %self.key, %monitor, mode = mode.as_str(), "monitor started");
        self.sip(SipCommand::Tell {
            to: monitor,
            msg: Linked::MonitorStarted,
        });
    }

    /// The agent's leg changed (a browser console re-attached): the supervisors hear the
    /// new one, in their modes.
    pub(super) fn relink_watchers(&mut self) {
        for w in self.monitors.watchers.clone() {
            self.monitor_media(&w);
        }
    }

    fn monitor_media(&mut self, w: &Watcher) {
        let (customer, agent) = match w.agent_side {
            Side::Agent => (self.caller.leg, self.agent.leg),
            Side::Caller => (self.agent.leg, self.caller.leg),
        };
        self.media(MediaOp::Monitor {
            leg: w.leg,
            customer,
            agent,
            mode: w.mode,
        });
    }

    /// The monitored parties are no longer both here (the call ends, the agent leaves): the
    /// supervisors' legs leave the room and their calls are told.
    pub(super) fn drop_watchers(&mut self, reason: &'static str) {
        for w in std::mem::take(&mut self.monitors.watchers) {
            self.media(MediaOp::StopTrack {
                leg: w.leg,
                monitor: w.monitor,
            });
            self.media(MediaOp::Leave { leg: w.leg });
            self.sip(SipCommand::Tell {
                to: w.monitor,
                msg: Linked::MonitorOver { code: 200, reason },
            });
        }
    }

    /// The call ends: its supervisors go, and the call it monitors is told.
    pub(super) fn end_monitors(&mut self) {
        self.drop_watchers("the monitored call ended");
        if let Some(w) = self.monitors.watching.take() {
            self.sip(SipCommand::Tell {
                to: w.target,
                msg: Linked::MonitorEnded { monitor: self.key },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names_of_modes() {
        assert_eq!(MonitorMode::from_key('1'), Some(MonitorMode::Listen));
        assert_eq!(MonitorMode::from_key('2'), Some(MonitorMode::Whisper));
        assert_eq!(MonitorMode::from_key('3'), Some(MonitorMode::Barge));
        assert_eq!(MonitorMode::from_key('4'), None);
        for m in [
            MonitorMode::Listen,
            MonitorMode::Whisper,
            MonitorMode::Barge,
        ] {
            assert_eq!(MonitorMode::parse(m.as_str()), Some(m));
        }
    }
}
