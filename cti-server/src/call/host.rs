//! The service side of a hosted call: what the caller hears and where they go after the
//! server answered. One [`Host`] per hosted call, next to its [`Call`]; sans-IO like it.
//!
//! It ties three machines together: the IVR [`Session`](crate::ivr::Session) (prompts, keys,
//! lead lookups, a destination), the ACD (the call is queued, offered to agents, overflows)
//! and the call's legs ([`Call::play`], [`Call::dial`], [`Call::start_recording`]):
//!
//! - **IVR**: the session's actions become plays and lookups; its destination moves the call
//!   on: a queue, an agent, voicemail, an external number, or a hang-up.
//! - **Queue**: the caller hears the queue's hold music (announcements of position and
//!   expected wait in between) while the ACD offers the call; an offer resolves the agent's
//!   contact with the SIP task, dials it without a ring timeout of its own (the ACD owns that
//!   timer) and reports ringing, answer and failure back. The ACD's overflow moves the caller
//!   on like an IVR destination.
//! - **Voicemail**: greeting, tone, recording until `#`, hang-up or the length limit; the
//!   recording's summary becomes a [`Voicemail`] for the store.
//!
//! Everything the call cannot do itself comes out of [`Host::poll_output`]: events for the
//! ACD, lead lookups, voicemails to store.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::acd::config::OverflowTarget;
use crate::acd::{AcdAction, AcdEvent, CallRef, OfferFailure};
use crate::ivr::{
    self, Action, CallContext, Destination, FlowSet, LeadMatch, LeadQuery, Now, Session,
};

use super::monitor::MonitorMode;
use super::router::{MonitorTarget, Route, Service};
use super::{Call, CallKey, EndCause, Notice, Target};

/// What a host needs to know besides the call.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Prompts the host plays itself (hold music, announcements, voicemail), by file name
    /// (see [`HostConfig::prompt`]).
    pub prompts_dir: PathBuf,
    /// Hold music for queues that have none of their own.
    pub hold_music: PathBuf,
    /// Per-queue hold music.
    pub queue_music: Vec<(String, PathBuf)>,
    /// Where voicemails are written (`<dir>/<box>/<time>-<call>.wav`).
    pub voicemail_dir: PathBuf,
    /// Longest voicemail.
    pub voicemail_max: Duration,
    /// Ring timeout for agents and numbers dialed directly by a flow or an overflow.
    pub direct_ring_timeout: Duration,
    /// Voicemail box for callers whose direct agent did not answer.
    pub fallback_voicemail: String,
    /// Whether each queue's calls are recorded.
    pub queue_recording: Vec<(String, crate::config::RecordingPolicy)>,
    /// Country calling code for callers' national numbers (lead lookup).
    pub lead_country: String,
    /// Result codes per queue, for the agents' wrap-up (in the screen pop).
    pub dispositions: crate::disposition::Dispositions,
}

impl HostConfig {
    fn prompt(&self, name: &str) -> PathBuf {
        self.prompts_dir.join(name)
    }

    fn music_for(&self, queue: &str) -> PathBuf {
        self.queue_music
            .iter()
            .find(|(q, _)| q == queue)
            .map_or_else(|| self.hold_music.clone(), |(_, p)| p.clone())
    }
}

/// A voicemail left by a caller, for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Voicemail {
    pub call: CallKey,
    pub mailbox: String,
    pub caller: String,
    pub lead_id: Option<i64>,
    pub path: PathBuf,
    pub started_at: SystemTime,
    pub duration: Duration,
}

/// What the host asks of the world.
#[derive(Debug, Clone, PartialEq)]
pub enum HostOutput {
    /// For the ACD actor.
    Acd(AcdEvent),
    /// Look a lead up; answer with [`Host::lead_found`].
    LookupLead(LeadQuery),
    /// Store this voicemail.
    Voicemail(Voicemail),
    /// Store this monitor session in the audit log.
    Monitor(MonitorSession),
    /// The call is offered to an agent: pop it on their screen.
    Offered(crate::cti::Offer),
}

/// A supervisor's monitor session, for the audit log: who monitored whom, in which modes
/// and when.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSession {
    /// The supervisor's call.
    pub call: CallKey,
    /// The agent's call.
    pub monitored: CallKey,
    pub supervisor: String,
    pub agent: String,
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    /// Each mode asked for, and when.
    pub modes: Vec<(SystemTime, MonitorMode)>,
    /// The monitored call took the supervisor in.
    pub connected: bool,
    /// How it ended: "supervisor hung up", the monitored call's reason, or a refusal.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Waiting for the server's answer to the caller.
    Starting(Service),
    Ivr,
    /// In the ACD's queue; `announcing` while an announcement replaces the music.
    Queued {
        queue: String,
        announcing: bool,
    },
    /// The ACD offered the call to `agent`: resolving its contact, then dialing.
    Offering {
        queue: String,
        agent: String,
    },
    /// Talking to a queue agent.
    Connected {
        queue: String,
        agent: String,
    },
    /// Dialing (then talking to) an agent or a number outside the ACD.
    Direct {
        number: String,
        connected: bool,
    },
    /// The greeting plays, then the recording runs until `deadline` (see `Host::voicemail`).
    Voicemail {
        mailbox: String,
        recording: bool,
        deadline: Option<Instant>,
    },
    /// The agent asked to transfer the caller to `number`, which is being routed; `back` is
    /// where the call was (and returns to if the number goes nowhere).
    Transferring {
        number: String,
        back: Box<Phase>,
    },
    /// A supervisor monitors an agent's call.
    Monitoring,
    /// Saying goodbye, then hanging up.
    Goodbye,
    Done,
}

pub struct Host {
    key: CallKey,
    config: Arc<HostConfig>,
    flows: Arc<FlowSet>,
    phase: Phase,
    ivr: Option<Session>,
    caller: String,
    dialed: String,
    /// When the caller arrived (kept across queues).
    arrived: Instant,
    lead: Option<LeadMatch>,
    /// The voicemail being recorded: box and start time, kept until the recording's summary
    /// comes back (after the caller hung up, or the goodbye).
    voicemail: Option<(String, SystemTime)>,
    /// The monitor session of a supervisor's call, until it ends.
    monitor: Option<MonitorSession>,
    out: VecDeque<HostOutput>,
}

impl Host {
    pub fn new(
        key: CallKey,
        service: Service,
        config: Arc<HostConfig>,
        flows: Arc<FlowSet>,
        now: Instant,
    ) -> Host {
        Host {
            key,
            config,
            flows,
            phase: Phase::Starting(service),
            ivr: None,
            caller: String::new(),
            dialed: String::new(),
            arrived: now,
            lead: None,
            voicemail: None,
            monitor: None,
            out: VecDeque::new(),
        }
    }

    /// The service side of a relayed call (a caller put straight through to an agent or the
    /// trunk) whose agent transfers it: it starts with nothing to do but the transfer.
    pub fn adopt(call: &Call, config: Arc<HostConfig>, flows: Arc<FlowSet>, now: Instant) -> Host {
        let (caller, dialed) = call.caller_and_dialed();
        Host {
            key: call.key(),
            config,
            flows,
            phase: Phase::Done,
            ivr: None,
            caller,
            dialed,
            arrived: now,
            lead: None,
            voicemail: None,
            monitor: None,
            out: VecDeque::new(),
        }
    }

    fn call_ref(&self) -> CallRef {
        CallRef(self.key.0)
    }

    pub fn poll_output(&mut self) -> Option<HostOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ivr = match self.phase {
            Phase::Ivr => self.ivr.as_ref().and_then(Session::poll_timeout),
            _ => None,
        };
        let vm = match &self.phase {
            Phase::Voicemail { deadline, .. } => *deadline,
            _ => None,
        };
        ivr.into_iter().chain(vm).min()
    }

    pub fn handle_timeout(&mut self, call: &mut Call, now: Now) {
        match &self.phase {
            Phase::Ivr => {
                if let Some(s) = self.ivr.as_mut()
                    && s.poll_timeout().is_some_and(|d| now.mono >= d)
                {
                    s.handle_timeout(now);
                    self.drain_ivr(call, now);
                }
            }
            Phase::Voicemail {
                deadline: Some(d), ..
            } if now.mono >= *d => self.end_voicemail(call),
            _ => {}
        }
    }

    /// The answer to a [`HostOutput::LookupLead`].
    pub fn lead_found(&mut self, call: &mut Call, lead: Option<LeadMatch>, now: Now) {
        if let Some(l) = &lead {
            self.lead = Some(l.clone());
        }
        if let (Phase::Ivr, Some(s)) = (&self.phase, self.ivr.as_mut()) {
            s.handle(ivr::Event::LeadLookup(lead), now);
            self.drain_ivr(call, now);
        }
    }

    /// What the service does with the caller now, for the live view.
    pub fn activity(&self) -> Option<&'static str> {
        Some(match &self.phase {
            Phase::Starting(_) => "setup",
            Phase::Ivr => "ivr",
            Phase::Queued { .. } | Phase::Offering { .. } => "queued",
            Phase::Direct {
                connected: false, ..
            } => "ringing",
            Phase::Voicemail { .. } => "voicemail",
            Phase::Transferring { .. } => "transferring",
            Phase::Monitoring => "monitoring",
            Phase::Goodbye => "ending",
            Phase::Connected { .. } | Phase::Direct { .. } | Phase::Done => return None,
        })
    }

    /// The lead matched so far (IVR lookup), for the screen pop and the records.
    pub fn lead(&self) -> Option<&LeadMatch> {
        self.lead.as_ref()
    }

    /// The IVR variables of the call (collected digits, lookups), for the screen pop.
    pub fn variables(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.ivr.as_ref().map(Session::variables)
    }

    /// The voicemail being recorded could not be (the disk): true when there was one; the
    /// caller's message is lost, which the log says.
    pub fn recording_lost(&mut self) -> bool {
        match self.voicemail.take() {
            Some((mailbox, _)) => {
                tracing::error!(call = %self.key, mailbox, "voicemail not recorded");
                true
            }
            None => false,
        }
    }

    /// A recording of this call closed. True when it was a voicemail (stored here); false
    /// for the call's own recording.
    pub fn recorded(&mut self, path: PathBuf, duration: Duration) -> bool {
        let Some((mailbox, started_at)) = self.voicemail.take() else {
            return false;
        };
        self.out.push_back(HostOutput::Voicemail(Voicemail {
            call: self.key,
            mailbox,
            caller: self.caller.clone(),
            lead_id: self.lead.as_ref().map(|l| l.lead_id),
            path,
            started_at,
            duration,
        }));
        true
    }

    /// Something the call says.
    pub fn on_notice(&mut self, call: &mut Call, notice: Notice, now: Now) {
        tracing::debug!(call = %self.key, ?notice, phase = ?self.phase, "notice");
        match notice {
            Notice::Answered => {
                let (caller, dialed) = call.caller_and_dialed();
                self.caller = caller;
                self.dialed = dialed;
                if let Phase::Starting(service) = std::mem::replace(&mut self.phase, Phase::Done) {
                    match service {
                        Service::Flow(flow) => self.start_flow(call, &flow, now),
                        Service::Queue(q) => self.enter_queue(call, q, 0),
                        Service::Voicemail(b) => self.start_voicemail(call, b),
                        Service::Monitor(t) => self.start_monitor(call, t, now),
                        Service::Agent(a) => self.dial_direct(call, a),
                    }
                }
            }
            Notice::Digit(d) => match &self.phase {
                Phase::Ivr => {
                    if let Some(s) = self.ivr.as_mut() {
                        s.handle(ivr::Event::Digit(d), now);
                    }
                    self.drain_ivr(call, now);
                }
                Phase::Voicemail {
                    recording: true, ..
                } if d == '#' => self.end_voicemail(call),
                Phase::Monitoring => {
                    if let Some(mode) = MonitorMode::from_key(d) {
                        self.switch_monitor_mode(call, mode, now);
                    }
                }
                _ => {}
            },
            Notice::PromptFinished => match &mut self.phase {
                Phase::Ivr => {
                    if let Some(s) = self.ivr.as_mut() {
                        s.handle(ivr::Event::PromptFinished, now);
                    }
                    self.drain_ivr(call, now);
                }
                Phase::Queued { queue, announcing } if *announcing => {
                    *announcing = false;
                    let music = self.config.music_for(queue);
                    call.play(vec![music], true, false);
                }
                Phase::Voicemail {
                    recording: false, ..
                } => {
                    // The greeting and the tone played: record.
                    self.record_voicemail(call, now);
                }
                Phase::Goodbye => {
                    self.phase = Phase::Done;
                    call.hang_up(now.mono, EndCause::Completed);
                }
                _ => {}
            },
            Notice::Resolved(number, target) => self.resolved(call, number, *target, now),
            Notice::AgentRinging => {
                if let Phase::Offering { agent, .. } = &self.phase {
                    let agent = agent.clone();
                    self.acd(AcdEvent::OfferRinging {
                        call: self.call_ref(),
                        agent,
                    });
                }
            }
            Notice::AgentAnswered => match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Offering { queue, agent } => {
                    self.acd(AcdEvent::OfferAnswered {
                        call: self.call_ref(),
                        agent: agent.clone(),
                    });
                    self.phase = Phase::Connected { queue, agent };
                }
                Phase::Direct { number, .. } => {
                    self.phase = Phase::Direct {
                        number,
                        connected: true,
                    };
                }
                other => self.phase = other,
            },
            Notice::AgentFailed(cause) => match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Offering { queue, agent } => {
                    self.acd(AcdEvent::OfferFailed {
                        call: self.call_ref(),
                        agent,
                        reason: offer_failure(cause),
                    });
                    self.phase = Phase::Queued {
                        queue,
                        announcing: false,
                    };
                }
                Phase::Direct { .. } => {
                    tracing::info!(call = %self.key, cause = %cause.as_str(), "direct dial failed: voicemail");
                    let mailbox = self.config.fallback_voicemail.clone();
                    self.start_voicemail(call, mailbox);
                }
                other => self.phase = other,
            },
            Notice::AgentHold(held) => {
                if matches!(
                    self.phase,
                    Phase::Connected { .. }
                        | Phase::Direct {
                            connected: true,
                            ..
                        }
                ) {
                    // A caller on hold hears music, not silence.
                    if held {
                        call.play(vec![self.hold_music()], true, false);
                    } else {
                        call.stop_play();
                    }
                }
            }
            Notice::TransferRequested(number) => self.transfer(call, number),
            Notice::Routed(number, route) => self.transfer_routed(call, number, *route, now),
            Notice::Joined { dropped } => {
                if dropped == super::Side::Agent {
                    // The agent joined the caller with a colleague's call and left.
                    let phase = std::mem::replace(&mut self.phase, Phase::Done);
                    self.agent_left(phase);
                }
            }
            Notice::MonitorStarted => {
                if let Some(s) = self.monitor.as_mut() {
                    s.connected = true;
                }
            }
            Notice::MonitorOver { code, reason } => {
                if let Some(s) = self.monitor.as_mut() {
                    s.outcome = if code == 200 {
                        reason.to_string()
                    } else {
                        format!("refused: {code} {reason}")
                    };
                }
            }
            Notice::Ending(_) => {
                if let Some(mut s) = self.monitor.take() {
                    s.ended_at = now.wall;
                    if s.outcome.is_empty() {
                        s.outcome = "supervisor hung up".into();
                    }
                    tracing::info!(
                        call = %self.key,
                        supervisor = %s.supervisor,
                        agent = %s.agent,
                        outcome = %s.outcome,
                        "monitor session over"
                    );
                    self.out.push_back(HostOutput::Monitor(s));
                }
                // A voicemail being recorded is closed by the call; its summary still comes
                // to [`Host::recorded`].
                let phase = match std::mem::replace(&mut self.phase, Phase::Done) {
                    Phase::Transferring { back, .. } => *back,
                    p => p,
                };
                match phase {
                    Phase::Queued { .. } | Phase::Offering { .. } => {
                        self.acd(AcdEvent::CallAbandoned {
                            call: self.call_ref(),
                        });
                    }
                    Phase::Connected { agent, .. } => {
                        self.acd(AcdEvent::CallEnded {
                            call: self.call_ref(),
                            agent,
                        });
                    }
                    Phase::Direct {
                        number,
                        connected: true,
                    } => self.acd(AcdEvent::DirectCallEnded { agent: number }),
                    _ => {}
                }
            }
        }
    }

    /// Something the ACD decided for this call.
    pub fn on_acd(&mut self, call: &mut Call, action: AcdAction, now: Now) {
        tracing::debug!(call = %self.key, ?action, phase = ?self.phase, "ACD action");
        match action {
            AcdAction::Offer { agent, queue, .. } => {
                if !matches!(self.phase, Phase::Queued { .. }) || call.is_dialing() {
                    // The caller left the queue meanwhile (their abandon is on its way to
                    // the ACD), or a dial is still finishing: this offer fails at once.
                    self.acd(AcdEvent::OfferFailed {
                        call: self.call_ref(),
                        agent,
                        reason: OfferFailure::Unreachable,
                    });
                    return;
                }
                self.phase = Phase::Offering {
                    queue,
                    agent: agent.clone(),
                };
                call.resolve(agent);
            }
            AcdAction::CancelOffer { agent, .. } => match &self.phase {
                Phase::Offering { queue, agent: a } if *a == agent => {
                    call.cancel_dial(now.mono);
                    self.phase = Phase::Queued {
                        queue: queue.clone(),
                        announcing: false,
                    };
                }
                Phase::Connected { queue, agent: a } if *a == agent => {
                    // The answer crossed the ACD's cancel: the ACD kept the caller queued, so
                    // this agent is let go and the caller waits for the next one.
                    let queue = queue.clone();
                    call.drop_agent(now.mono);
                    let music = self.config.music_for(&queue);
                    call.play(vec![music], true, false);
                    self.phase = Phase::Queued {
                        queue,
                        announcing: false,
                    };
                }
                _ => {}
            },
            AcdAction::Requeued { to, .. } => {
                if let Phase::Queued { queue, .. } | Phase::Offering { queue, .. } = &mut self.phase
                {
                    *queue = to.clone();
                }
                call.add_service(format!("queue:{to}"));
                if matches!(self.phase, Phase::Queued { .. }) {
                    let music = self.config.music_for(&to);
                    call.play(vec![music], true, false);
                }
            }
            AcdAction::Overflow { target, reason, .. } => {
                if matches!(self.phase, Phase::Offering { .. }) {
                    call.cancel_dial(now.mono);
                }
                tracing::info!(call = %self.key, ?target, ?reason, "overflow");
                match target {
                    OverflowTarget::Queue(q) => self.enter_queue(call, q, 0),
                    OverflowTarget::Agent(a) => self.dial_direct(call, a),
                    OverflowTarget::External(n) => self.dial_direct(call, n),
                    OverflowTarget::Voicemail(b) => self.start_voicemail(call, b),
                    OverflowTarget::Flow(f) => self.start_flow(call, &f, now),
                    OverflowTarget::Hangup => self.goodbye(call),
                }
            }
            AcdAction::Announce {
                position,
                expected_wait,
                ..
            } => {
                if let Phase::Queued { announcing, .. } = &mut self.phase {
                    *announcing = true;
                    let prompts = announcement(&self.config, position, expected_wait);
                    call.play(prompts, false, false);
                }
            }
            AcdAction::Event(_) => {}
        }
    }

    /// The agent's phone asked to transfer the caller to `number` (blind transfer).
    fn transfer(&mut self, call: &mut Call, number: String) {
        let connected = matches!(
            self.phase,
            Phase::Connected { .. }
                | Phase::Direct {
                    connected: true,
                    ..
                }
                | Phase::Done
        );
        if !connected {
            call.transfer_failed(403, "Forbidden (nothing to transfer)");
            return;
        }
        tracing::info!(call = %self.key, number, "transfer: routing");
        let back = Box::new(std::mem::replace(&mut self.phase, Phase::Done));
        self.phase = Phase::Transferring {
            number: number.clone(),
            back,
        };
        call.route(number);
    }

    /// Where the transfer's number goes: the caller moves there and the agent is let go, or
    /// the agent hears it goes nowhere and keeps the caller.
    fn transfer_routed(
        &mut self,
        call: &mut Call,
        number: String,
        route: Result<Route, (u16, &'static str)>,
        now: Now,
    ) {
        let back = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Transferring { number: n, back } if n == number => *back,
            other => {
                self.phase = other;
                return;
            }
        };
        let route = match route {
            // A feature code is no place for a customer (the router never gives one here).
            Ok(Route::Hosted(Service::Monitor(_))) => {
                call.transfer_failed(403, "Forbidden");
                self.phase = back;
                return;
            }
            Ok(r) => r,
            Err((code, reason)) => {
                call.transfer_failed(code, reason);
                self.phase = back;
                return;
            }
        };
        call.transfer_completed();
        call.add_service(format!("transfer:{number}"));
        self.agent_left(back);
        match route {
            Route::Hosted(Service::Queue(q)) => self.enter_queue(call, q, 0),
            Route::Hosted(Service::Flow(f)) => self.start_flow(call, &f, now),
            Route::Hosted(Service::Voicemail(b)) => self.start_voicemail(call, b),
            Route::Hosted(Service::Monitor(_)) => {}
            Route::Hosted(Service::Agent(a)) => {
                call.play(vec![self.config.hold_music.clone()], true, false);
                self.dial_direct(call, a);
            }
            Route::Direct(target) => {
                self.phase = Phase::Direct {
                    number,
                    connected: false,
                };
                // Hold music while the new party's phone rings.
                call.play(vec![self.config.hold_music.clone()], true, false);
                self.dial_target(call, target, now);
            }
        }
    }

    /// The supervisor switches mode (a key on their phone, or their console through the
    /// API). False when this call is not monitoring.
    pub fn switch_monitor_mode(&mut self, call: &mut Call, mode: MonitorMode, now: Now) -> bool {
        let Some(current) = call.monitor_mode() else {
            return false;
        };
        if current != mode
            && call.set_monitor_mode(mode)
            && let Some(s) = self.monitor.as_mut()
        {
            s.modes.push((now.wall, mode));
        }
        true
    }

    /// Who monitors whom, for a supervisor's call.
    pub fn monitoring(&self) -> Option<(&str, &str)> {
        self.monitor
            .as_ref()
            .map(|m| (m.supervisor.as_str(), m.agent.as_str()))
    }

    /// A supervisor's call to the monitor code is answered: it asks the agent's call to take
    /// it in, listening first.
    fn start_monitor(&mut self, call: &mut Call, t: MonitorTarget, now: Now) {
        let Some((target, agent_side)) = t.call else {
            // The SIP task finds the agent's call before the monitor call starts.
            call.hang_up(now.mono, EndCause::Failed);
            return;
        };
        let mode = MonitorMode::Listen;
        tracing::info!(call = %self.key, supervisor = %t.supervisor, agent = %t.agent, monitored = %target, "monitor session");
        self.monitor = Some(MonitorSession {
            call: self.key,
            monitored: target,
            supervisor: t.supervisor,
            agent: t.agent,
            started_at: now.wall,
            ended_at: now.wall,
            modes: vec![(now.wall, mode)],
            connected: false,
            outcome: String::new(),
        });
        self.phase = Phase::Monitoring;
        call.monitor(target, agent_side, mode);
    }

    /// The hold music of the queue the caller came through, else the default.
    fn hold_music(&self) -> PathBuf {
        match &self.phase {
            Phase::Connected { queue, .. } => self.config.music_for(queue),
            _ => self.config.hold_music.clone(),
        }
    }

    /// The agent left the call (transferred it): the ACD hears their call ended.
    fn agent_left(&mut self, phase: Phase) {
        match phase {
            Phase::Connected { agent, .. } => self.acd(AcdEvent::CallEnded {
                call: self.call_ref(),
                agent,
            }),
            Phase::Direct {
                number,
                connected: true,
            } => self.acd(AcdEvent::DirectCallEnded { agent: number }),
            _ => {}
        }
    }

    fn acd(&mut self, event: AcdEvent) {
        self.out.push_back(HostOutput::Acd(event));
    }

    fn start_flow(&mut self, call: &mut Call, flow: &str, now: Now) {
        let ctx = CallContext {
            caller: self.caller.clone(),
            dialed: self.dialed.clone(),
        };
        match Session::new(self.flows.clone(), flow, ctx, now) {
            Ok(s) => {
                call.add_service(format!("flow:{flow}"));
                self.ivr = Some(s);
                self.phase = Phase::Ivr;
                self.drain_ivr(call, now);
            }
            Err(e) => {
                tracing::warn!(call = %self.key, error = %e, "IVR flow missing: hanging up");
                self.phase = Phase::Done;
                call.hang_up(now.mono, EndCause::Failed);
            }
        }
    }

    fn drain_ivr(&mut self, call: &mut Call, now: Now) {
        while let Some(action) = self.ivr.as_mut().and_then(Session::poll_action) {
            tracing::debug!(call = %self.key, ?action, "IVR action");
            match action {
                Action::Play { prompts, barge_in } => call.play(prompts, false, barge_in),
                Action::StopPlay => call.stop_play(),
                Action::LookupLead(q) => self.out.push_back(HostOutput::LookupLead(q)),
                Action::Hangup => {
                    if let Some(e) = self.ivr.as_ref().and_then(Session::error) {
                        tracing::warn!(call = %self.key, error = e, "IVR error");
                    }
                    self.phase = Phase::Done;
                    call.hang_up(now.mono, EndCause::Completed);
                }
                Action::Route(dest) => match dest {
                    Destination::Queue { name, priority } => self.enter_queue(call, name, priority),
                    Destination::Agent(a) => self.dial_direct(call, a),
                    Destination::External(n) => self.dial_direct(call, n),
                    Destination::Voicemail(b) => self.voicemail_after_flow(call, b, now),
                },
            }
        }
    }

    fn enter_queue(&mut self, call: &mut Call, queue: String, priority: u8) {
        tracing::info!(call = %self.key, queue, priority, "queued");
        if let Some((_, policy)) = self
            .config
            .queue_recording
            .iter()
            .find(|(q, _)| *q == queue)
        {
            call.set_recording_policy(*policy);
        }
        call.add_service(format!("queue:{queue}"));
        let music = self.config.music_for(&queue);
        call.play(vec![music], true, false);
        self.acd(AcdEvent::CallQueued {
            call: self.call_ref(),
            queue: queue.clone(),
            priority,
            arrived: self.arrived,
            caller: self.caller.clone(),
        });
        self.phase = Phase::Queued {
            queue,
            announcing: false,
        };
    }

    fn dial_direct(&mut self, call: &mut Call, number: String) {
        call.add_service(format!("dial:{number}"));
        self.phase = Phase::Direct {
            number: number.clone(),
            connected: false,
        };
        call.resolve(number);
    }

    fn resolved(
        &mut self,
        call: &mut Call,
        number: String,
        target: Result<Target, (u16, &'static str)>,
        now: Now,
    ) {
        match (&self.phase, target) {
            (Phase::Offering { agent, .. }, Ok(t)) if *agent == number => {
                let agent = agent.clone();
                let dialing = call.dial(now.mono, t, None);
                if dialing {
                    self.offered(call, &agent);
                } else {
                    self.offer_failed_now(agent, OfferFailure::Unreachable);
                }
            }
            (Phase::Offering { agent, .. }, Err((code, _))) if *agent == number => {
                let agent = agent.clone();
                tracing::info!(call = %self.key, agent, code, "offered agent not reachable");
                self.offer_failed_now(agent, OfferFailure::Unreachable);
            }
            (Phase::Direct { number: n, .. }, Ok(t)) if *n == number => {
                self.dial_target(call, t, now)
            }
            (Phase::Direct { number: n, .. }, Err((code, _))) if *n == number => {
                tracing::info!(call = %self.key, number, code, "direct number not reachable: voicemail");
                let mailbox = self.config.fallback_voicemail.clone();
                self.start_voicemail(call, mailbox);
            }
            _ => {}
        }
    }

    /// Dials an agent or number outside the ACD, with the direct ring timeout; a dial that
    /// cannot start sends the caller to the fallback voicemail.
    fn dial_target(&mut self, call: &mut Call, t: Target, now: Now) {
        let ring = self.config.direct_ring_timeout;
        let agent = t.agent_extension().map(str::to_string);
        if let Some(agent) = &agent {
            self.acd(AcdEvent::DirectCallStarted {
                agent: agent.clone(),
            });
        }
        if !call.dial(now.mono, t, Some(ring)) {
            let mailbox = self.config.fallback_voicemail.clone();
            self.start_voicemail(call, mailbox);
        } else if let Some(agent) = agent {
            self.offered(call, &agent);
        }
    }

    /// The agent's phone is being rung for this call: their screen pops.
    fn offered(&mut self, call: &Call, agent: &str) {
        let queue = match &self.phase {
            Phase::Offering { queue, .. } => Some(queue.clone()),
            _ => None,
        };
        let queue_name = queue.clone();
        self.out.push_back(HostOutput::Offered(crate::cti::Offer {
            call: self.key.0,
            agent: agent.to_string(),
            caller: self.caller.clone(),
            dialed: self.dialed.clone(),
            queue,
            path: call.services().to_vec(),
            variables: self.variables().cloned().unwrap_or_default(),
            ivr_lead: self.lead.as_ref().map(|l| l.lead_id),
            outbound: false,
            dispositions: self
                .config
                .dispositions
                .codes(queue_name.as_deref())
                .to_vec(),
            disposition_required: queue_name
                .as_deref()
                .is_some_and(|q| self.config.dispositions.queues.contains_key(q)),
        }));
    }

    fn offer_failed_now(&mut self, agent: String, reason: OfferFailure) {
        if let Phase::Offering { queue, .. } = &self.phase {
            self.phase = Phase::Queued {
                queue: queue.clone(),
                announcing: false,
            };
        }
        self.acd(AcdEvent::OfferFailed {
            call: self.call_ref(),
            agent,
            reason,
        });
    }

    /// Voicemail for `mailbox`: the greeting and the tone, then the recording.
    fn start_voicemail(&mut self, call: &mut Call, mailbox: String) {
        call.add_service(format!("voicemail:{mailbox}"));
        call.play(
            vec![
                self.config.prompt("voicemail-greeting.wav"),
                self.config.prompt("beep.wav"),
            ],
            false,
            false,
        );
        self.phase = Phase::Voicemail {
            mailbox,
            recording: false,
            deadline: None,
        };
    }

    /// Voicemail reached from an IVR flow: the flow played its own greeting and tone (a
    /// flow may greet in its own words), so the recording starts at once.
    fn voicemail_after_flow(&mut self, call: &mut Call, mailbox: String, now: Now) {
        call.add_service(format!("voicemail:{mailbox}"));
        self.phase = Phase::Voicemail {
            mailbox,
            recording: false,
            deadline: None,
        };
        self.record_voicemail(call, now);
    }

    fn record_voicemail(&mut self, call: &mut Call, now: Now) {
        let Phase::Voicemail {
            mailbox,
            recording,
            deadline,
        } = &mut self.phase
        else {
            return;
        };
        let ms = now
            .wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = self
            .config
            .voicemail_dir
            .join(sanitize(mailbox))
            .join(format!("{ms}-{}.wav", self.key.0));
        call.start_recording(path);
        self.voicemail = Some((mailbox.clone(), now.wall));
        *recording = true;
        *deadline = Some(now.mono + self.config.voicemail_max);
    }

    /// `#`, or the length limit: the message is kept, the caller hears goodbye.
    fn end_voicemail(&mut self, call: &mut Call) {
        call.stop_recording();
        self.goodbye(call);
    }

    fn goodbye(&mut self, call: &mut Call) {
        self.phase = Phase::Goodbye;
        call.play(vec![self.config.prompt("goodbye.wav")], false, false);
    }
}

/// "You are caller number N. The expected wait is about M minutes."
fn announcement(config: &HostConfig, position: usize, wait: Option<Duration>) -> Vec<PathBuf> {
    let mut p = vec![config.prompt("caller-number.wav")];
    p.extend(number_prompts(config, position));
    if let Some(w) = wait {
        let minutes = w.as_secs().div_ceil(60).max(1) as usize;
        p.push(config.prompt("expected-wait.wav"));
        p.extend(number_prompts(config, minutes));
        p.push(config.prompt(if minutes == 1 {
            "minute.wav"
        } else {
            "minutes.wav"
        }));
    }
    p
}

/// A number said digit by digit ("one two" for 12): the shipped prompts are digits.
fn number_prompts(config: &HostConfig, n: usize) -> Vec<PathBuf> {
    n.to_string()
        .chars()
        .map(|c| config.prompt(&format!("digit-{c}.wav")))
        .collect()
}

fn offer_failure(cause: EndCause) -> OfferFailure {
    match cause {
        EndCause::AgentBusy => OfferFailure::Busy,
        EndCause::NoAnswer => OfferFailure::NoAnswer,
        EndCause::AgentRejected(_) => OfferFailure::Rejected,
        _ => OfferFailure::Unreachable,
    }
}

/// A mailbox name as a directory name: letters, digits, `-` and `_` only.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".into() } else { s }
}

#[cfg(test)]
mod tests {
    //! A hosted call and its host together, in virtual time: the shipped demo flows, the ACD's
    //! actions fed by hand, the SIP and media sides answered by the test.
    use std::net::SocketAddr;

    use super::*;
    use crate::acd::OverflowReason;
    use crate::call::browser::{SoftphoneEventKind, SoftphoneInput};
    use crate::call::{CallConfig, MediaOp, Output, ReqRef, SipCommand, SipInput};
    use crate::sdp::Codec;
    use crate::sip::dialog::LocalVia;
    use crate::sip::grammar::Uri;
    use crate::sip::message::{HeaderName, Request, SipHeaders, SipMessage};
    use crate::sip::transaction::{Peer, TxId};
    use crate::sip::types::{Method, Transport};
    use bytes::Bytes;
    use media::engine::LegId;

    const SDP: &str = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    const AGENT_SDP: &str = "v=0\r\no=a 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    fn peer(port: u16) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn invite() -> Request {
        let raw = format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKh1\r\nFrom: <sip:+4930111001@carrier>;tag=c\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: host-1\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.1:5999>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        match SipMessage::parse(raw.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    fn agent_target(ext: &str) -> Target {
        Target::Agent {
            extension: ext.into(),
            contact: Uri::parse(&format!("sip:{ext}@127.0.0.1:5888")).unwrap(),
            peer: peer(5888),
        }
    }

    /// A call in flow `service`, its host, and what came out of both.
    struct World {
        call: Call,
        host: Host,
        now: Instant,
        wall: SystemTime,
        media: Vec<MediaOp>,
        sip: Vec<SipCommand>,
        host_out: Vec<HostOutput>,
        /// What the agent's browser console was told.
        console: Vec<SoftphoneEventKind>,
    }

    impl World {
        fn start(service: Service) -> World {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ivr-scripts");
            let flows = Arc::new(FlowSet::load_dir(&dir).expect("shipped flows load"));
            let now = Instant::now();
            let config = CallConfig {
                ring_timeout: Duration::from_secs(20),
                end_timeout: Duration::from_secs(32),
                via: LocalVia::new(Transport::Udp, "127.0.0.1", Some(5060)),
                host: "127.0.0.1".into(),
                sip_port: 5060,
                media_ip: "127.0.0.1".parse().unwrap(),
                codecs: vec![Codec::Pcmu, Codec::Pcma],
                user_agent: "test".into(),
                record: crate::config::RecordingPolicy::Always,
                record_keys: "*1".into(),
                beep: Some("beep.wav".into()),
                hold_music: None,
                recordings_dir: "/tmp/rec".into(),
            };
            let call = Call::new_hosted(
                CallKey(9),
                config,
                now,
                0,
                TxId::for_test(1),
                invite(),
                peer(5999),
                (LegId(18), LegId(19)),
                service.to_string(),
            )
            .unwrap();
            let host_config = HostConfig {
                prompts_dir: dir.join("prompts"),
                hold_music: dir.join("prompts/hold-music.wav"),
                queue_music: vec![],
                voicemail_dir: "/tmp/vm".into(),
                voicemail_max: Duration::from_secs(60),
                direct_ring_timeout: Duration::from_secs(15),
                fallback_voicemail: "general".into(),
                queue_recording: vec![],
                lead_country: "49".into(),
                dispositions: Default::default(),
            };
            let host = Host::new(CallKey(9), service, Arc::new(host_config), flows, now);
            let mut w = World {
                call,
                host,
                now,
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                media: vec![],
                sip: vec![],
                host_out: vec![],
                console: vec![],
            };
            w.pump();
            w.call
                .media_ready(now, LegId(18), "127.0.0.1:40000".parse().unwrap());
            w.pump();
            w
        }

        fn t(&self) -> Now {
            Now {
                mono: self.now,
                wall: self.wall,
            }
        }

        /// Moves the call's outputs through the host, collecting the rest.
        fn pump(&mut self) {
            loop {
                let Some(out) = self.call.poll_output() else {
                    break;
                };
                match out {
                    Output::Notice(n) => {
                        let t = self.t();
                        self.host.on_notice(&mut self.call, n, t);
                    }
                    Output::Media(m) => self.media.push(m),
                    Output::Sip(s) => self.sip.push(s),
                    Output::Softphone(e) => self.console.push(e.kind),
                    Output::Ended(_) => {}
                }
            }
            while let Some(o) = self.host.poll_output() {
                self.host_out.push(o);
            }
        }

        fn take_media(&mut self) -> Vec<MediaOp> {
            std::mem::take(&mut self.media)
        }

        fn take_acd(&mut self) -> Vec<AcdEvent> {
            let mut out = vec![];
            self.host_out.retain(|o| match o {
                HostOutput::Acd(e) => {
                    out.push(e.clone());
                    false
                }
                _ => true,
            });
            out
        }

        /// The id and file of the last Play.
        fn last_play(&self) -> (u64, String) {
            self.media
                .iter()
                .rev()
                .find_map(|m| match m {
                    MediaOp::Play { id, prompt, .. } => Some((
                        *id,
                        prompt.file_name().unwrap().to_string_lossy().into_owned(),
                    )),
                    _ => None,
                })
                .expect("a play")
        }

        fn prompt_done(&mut self) {
            let (id, _) = self.last_play();
            self.call.prompt_ended(LegId(18), id, false);
            self.pump();
        }

        /// The ACD offers the call to `agent` of `queue` (15 s ring).
        fn offer(&mut self, agent: &str, queue: &str) {
            self.acd(AcdAction::Offer {
                call: CallRef(9),
                agent: agent.into(),
                queue: queue.into(),
                ring_timeout: Duration::from_secs(15),
            });
        }

        fn acd(&mut self, a: AcdAction) {
            let t = self.t();
            self.host.on_acd(&mut self.call, a, t);
            self.pump();
        }

        /// Answers a Resolve with `target`; returns the agent INVITE once its leg is up.
        fn resolve_and_ring(&mut self, target: Target) -> (ReqRef, Request) {
            resolve(self, target);
            self.call
                .media_ready(self.now, LegId(19), "127.0.0.1:40002".parse().unwrap());
            self.pump();
            self.sip
                .iter()
                .rev()
                .find_map(|s| match s {
                    SipCommand::Send { req, request, .. } if request.method == Method::Invite => {
                        Some((*req, request.clone()))
                    }
                    _ => None,
                })
                .expect("agent INVITE")
        }

        fn agent_says(&mut self, req: ReqRef, invite: &Request, code: u16) {
            let mut r = invite.response(code, "x", Some("at"));
            r.headers
                .push(HeaderName::Contact, "<sip:a@127.0.0.1:5888>");
            if code == 200 {
                r.headers.push(HeaderName::ContentType, "application/sdp");
                r.body = Bytes::from(AGENT_SDP);
            }
            self.call
                .handle_sip(self.now, SipInput::Response { req, response: r });
            self.pump();
        }
    }

    #[test]
    fn menu_key_1_queues_the_caller_with_hold_music_and_an_offer_connects_the_agent() {
        let mut w = World::start(Service::Flow("menu".into()));
        assert_eq!(w.last_play().1, "welcome.wav");
        w.call.dtmf(w.now, LegId(18), '1');
        w.pump();
        assert_eq!(w.last_play().1, "connecting.wav");
        w.prompt_done();
        // In the queue: hold music loops, the ACD hears of the caller.
        assert!(
            matches!(w.media.last(), Some(MediaOp::Play { looped: true, prompt, .. }) if prompt.ends_with("hold-music.wav"))
        );
        let queued = w.take_acd();
        assert!(
            matches!(&queued[..], [AcdEvent::CallQueued { queue, caller, .. }] if queue == "sales" && caller == "+4930111001"),
            "{queued:?}"
        );
        // Announcement, then the music again.
        w.take_media();
        w.acd(AcdAction::Announce {
            call: CallRef(9),
            position: 2,
            expected_wait: Some(Duration::from_secs(90)),
        });
        let files: Vec<String> = w
            .media
            .iter()
            .filter_map(|m| match m {
                MediaOp::Play { prompt, .. } => {
                    Some(prompt.file_name().unwrap().to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect();
        assert_eq!(files, vec!["caller-number.wav"]);
        for _ in 0..5 {
            w.prompt_done();
        }
        assert_eq!(w.last_play().1, "hold-music.wav");
        // The offer: resolve, dial, ring, answer.
        w.offer("1001", "sales");
        let (req, inv) = w.resolve_and_ring(agent_target("1001"));
        w.agent_says(req, &inv, 180);
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::OfferRinging { agent, .. }] if agent == "1001")
        );
        w.agent_says(req, &inv, 200);
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::OfferAnswered { agent, .. }] if agent == "1001")
        );
        assert!(w.call.agent_connected());
        assert!(w.media.contains(&MediaOp::StopPlay { leg: LegId(18) }));
        // Hang-up: the ACD hears the call ended (wrap-up).
        w.call.hang_up(w.now, EndCause::Completed);
        w.pump();
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::CallEnded { agent, .. }] if agent == "1001")
        );
    }

    fn resolve(w: &mut World, target: Target) {
        let number = w
            .sip
            .iter()
            .rev()
            .find_map(|s| match s {
                SipCommand::Resolve { number } => Some(number.clone()),
                _ => None,
            })
            .expect("a resolve");
        w.call.handle_sip(
            w.now,
            SipInput::Resolved {
                number,
                target: Ok(target),
            },
        );
        w.pump();
    }

    fn console(w: &mut World, input: SoftphoneInput) {
        w.call.softphone(w.now, "1001", input);
        w.pump();
    }

    fn browser_1001(session: u64, leg: u64) -> Target {
        Target::Browser {
            extension: "1001".into(),
            session,
            leg: LegId(leg),
        }
    }

    fn music_plays(w: &World) -> bool {
        matches!(w.media.iter().rev().find(|m| matches!(m, MediaOp::Play { .. } | MediaOp::StopPlay { .. })),
            Some(MediaOp::Play { looped: true, prompt, .. }) if prompt.ends_with("hold-music.wav"))
    }

    #[test]
    fn a_browser_agent_rings_answers_holds_reloads_and_hangs_up_without_sip() {
        let mut w = World::start(Service::Queue("sales".into()));
        w.offer("1001", "sales");
        w.take_media();
        w.take_acd();
        resolve(&mut w, browser_1001(1, 900));
        // The console rings at once: no media leg made, no INVITE; the ACD hears ringing
        // and the agent's screen pops.
        assert!(
            matches!(&w.console[..], [SoftphoneEventKind::Ringing { caller, .. }] if caller == "+4930111001"),
            "{:?}",
            w.console
        );
        assert!(
            w.sip.iter().all(|s| !matches!(s, SipCommand::Send { .. })),
            "{:?}",
            w.sip
        );
        assert!(
            !w.media
                .iter()
                .any(|m| matches!(m, MediaOp::CreateLeg { .. }))
        );
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::OfferRinging { agent, .. }] if agent == "1001")
        );
        assert!(
            w.host_out
                .iter()
                .any(|o| matches!(o, HostOutput::Offered(o) if o.agent == "1001"))
        );
        assert!(w.call.is_dialing());
        // Somebody else's console cannot answer it.
        w.call.softphone(w.now, "1002", SoftphoneInput::Answer);
        w.pump();
        assert!(!w.call.agent_connected());

        // Answer: the console's leg joins the caller, the music stops, the ACD hears it.
        w.console.clear();
        console(&mut w, SoftphoneInput::Answer);
        assert!(w.call.agent_connected());
        assert!(w.media.contains(&MediaOp::Bridge {
            caller: LegId(18),
            agent: LegId(900)
        }));
        assert!(w.media.contains(&MediaOp::StopPlay { leg: LegId(18) }));
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::OfferAnswered { agent, .. }] if agent == "1001")
        );
        assert!(matches!(
            &w.console[..],
            [SoftphoneEventKind::Connected { held: false, .. }]
        ));

        // Hold: the customer hears music and neither hears the other; resume undoes it.
        w.take_media();
        console(&mut w, SoftphoneInput::Hold(true));
        assert!(music_plays(&w));
        // The console's leg leaves the room, so it can take another line.
        assert!(w.media.contains(&MediaOp::Leave { leg: LegId(900) }));
        console(&mut w, SoftphoneInput::Hold(false));
        assert!(!music_plays(&w));
        let bridged = w.media.iter().rposition(|m| {
            *m == MediaOp::Bridge {
                caller: LegId(18),
                agent: LegId(900),
            }
        });
        let left = w
            .media
            .iter()
            .rposition(|m| *m == MediaOp::Leave { leg: LegId(900) });
        assert!(
            bridged > left,
            "back in the room after leaving it: {:?}",
            w.media
        );

        // A key on the console's keypad goes to the customer as RFC 4733.
        console(&mut w, SoftphoneInput::Digit('5'));
        assert!(w.media.contains(&MediaOp::SendDtmf {
            leg: LegId(18),
            digit: '5'
        }));

        // The page reloads: music meanwhile; the new console's leg takes the call over.
        w.take_media();
        console(&mut w, SoftphoneInput::Lost);
        assert!(music_plays(&w));
        assert!(w.call.agent_connected(), "the call waits for the console");
        w.console.clear();
        console(
            &mut w,
            SoftphoneInput::Reattach {
                session: 2,
                leg: LegId(902),
            },
        );
        assert!(w.media.contains(&MediaOp::Leave { leg: LegId(900) }));
        assert!(w.media.contains(&MediaOp::Bridge {
            caller: LegId(18),
            agent: LegId(902)
        }));
        assert!(!music_plays(&w));
        assert!(matches!(
            &w.console[..],
            [SoftphoneEventKind::Connected { held: false, .. }]
        ));

        // The agent hangs up: the console's leg leaves (it stays up), the caller gets a BYE,
        // the ACD hears the call ended.
        w.take_media();
        w.sip.clear();
        console(&mut w, SoftphoneInput::Hangup);
        assert!(w.media.contains(&MediaOp::Leave { leg: LegId(902) }));
        assert!(!w.media.contains(&MediaOp::EndLeg {
            leg: LegId(902),
            side: crate::call::Side::Agent
        }));
        assert!(w.sip.iter().any(
            |s| matches!(s, SipCommand::Send { request, .. } if request.method == Method::Bye)
        ));
        assert!(matches!(
            w.console.last(),
            Some(SoftphoneEventKind::Ended { .. })
        ));
        assert!(
            w.take_acd()
                .iter()
                .any(|e| matches!(e, AcdEvent::CallEnded { agent, .. } if agent == "1001"))
        );
    }

    #[test]
    fn a_browser_that_does_not_answer_or_declines_leaves_the_caller_queued() {
        let mut w = World::start(Service::Queue("sales".into()));
        let offer = |w: &mut World| {
            w.offer("1001", "sales");
            resolve(w, browser_1001(1, 900));
            w.take_acd();
        };
        offer(&mut w);
        // The ACD's ring timeout: it cancels; the console stops ringing.
        w.console.clear();
        w.acd(AcdAction::CancelOffer {
            call: CallRef(9),
            agent: "1001".into(),
        });
        assert_eq!(w.console, vec![SoftphoneEventKind::Cancelled]);
        assert!(!w.call.is_dialing());
        assert!(music_plays(&w));
        // A late click answers nothing.
        console(&mut w, SoftphoneInput::Answer);
        assert!(!w.call.agent_connected());
        // Offered again, declined: the ACD hears the offer failed; the caller waits on.
        offer(&mut w);
        console(&mut w, SoftphoneInput::Decline);
        assert!(
            w.take_acd()
                .iter()
                .any(|e| matches!(e, AcdEvent::OfferFailed { agent, .. } if agent == "1001"))
        );
        assert!(!w.call.is_dialing());
        // The console vanishes while ringing (after its grace period): the same.
        offer(&mut w);
        console(&mut w, SoftphoneInput::Gone);
        assert!(
            w.take_acd()
                .iter()
                .any(|e| matches!(e, AcdEvent::OfferFailed { agent, .. } if agent == "1001"))
        );
    }

    #[test]
    fn a_direct_call_to_a_browser_agent_rings_the_console_then_voicemail_on_no_answer() {
        let mut w = World::start(Service::Agent("1001".into()));
        resolve(&mut w, browser_1001(3, 906));
        assert!(matches!(
            &w.console[..],
            [SoftphoneEventKind::Ringing { .. }]
        ));
        assert!(
            w.take_acd()
                .iter()
                .any(|e| matches!(e, AcdEvent::DirectCallStarted { agent } if agent == "1001"))
        );
        // The direct ring timeout (15 s) passes: the console stops, the caller gets voicemail.
        w.now += Duration::from_secs(16);
        w.call.handle_timeout(w.now);
        w.pump();
        assert_eq!(w.console.last(), Some(&SoftphoneEventKind::Cancelled));
        assert!(w.media.iter().any(|m| matches!(m, MediaOp::Play { prompt, .. } if prompt.to_string_lossy().contains("voicemail"))), "{:?}", w.media);
    }

    /// A queue caller connected to agent 1001; returns the agent INVITE.
    fn connected_to_1001() -> (World, Request) {
        let mut w = World::start(Service::Queue("sales".into()));
        w.offer("1001", "sales");
        let (req, inv) = w.resolve_and_ring(agent_target("1001"));
        w.agent_says(req, &inv, 200);
        assert!(w.call.agent_connected());
        w.take_acd();
        w.sip.clear();
        (w, inv)
    }

    /// The agent's phone sends REFER to `number` in the dialog of `inv`.
    fn agent_refers(w: &mut World, inv: &Request, number: &str) {
        let raw = format!(
            "REFER sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5888;branch=z9hG4bKrefer\r\nFrom: <sip:1001@127.0.0.1>;tag=at\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 3 REFER\r\nRefer-To: <sip:{number}@127.0.0.1>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            inv.headers.get(&HeaderName::From).unwrap(),
            inv.call_id().unwrap()
        );
        let SipMessage::Request(refer) = SipMessage::parse(raw.as_bytes()).unwrap() else {
            unreachable!()
        };
        w.call.handle_sip(
            w.now,
            SipInput::Request {
                tx: TxId::for_test(50),
                request: refer,
                source: peer(5888),
            },
        );
        w.pump();
    }

    /// The status lines of the NOTIFYs sent so far.
    fn notified(w: &World) -> Vec<String> {
        w.sip
            .iter()
            .filter_map(|s| match s {
                SipCommand::Send { request, .. } if request.method == Method::Notify => Some(
                    String::from_utf8_lossy(&request.body)
                        .trim_end()
                        .to_string(),
                ),
                _ => None,
            })
            .collect()
    }

    fn routed(w: &mut World, number: &str, route: Result<Route, (u16, &'static str)>) {
        assert!(
            w.sip
                .iter()
                .any(|s| matches!(s, SipCommand::Route { number: n } if n == number)),
            "{:?}",
            w.sip
        );
        w.call.handle_sip(
            w.now,
            SipInput::Routed {
                number: number.into(),
                route: route.map(Box::new),
            },
        );
        w.pump();
    }

    #[test]
    fn a_caller_put_on_hold_by_the_agent_hears_the_queues_music() {
        let (mut w, inv) = connected_to_1001();
        for (cseq, dir) in [(4u64, "sendonly"), (5, "sendrecv")] {
            let sdp = AGENT_SDP.replace(
                "a=rtpmap:0 PCMU/8000\r\n",
                &format!("a=rtpmap:0 PCMU/8000\r\na={dir}\r\n"),
            );
            let raw = format!(
                "INVITE sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5888;branch=z9hG4bKhold{cseq}\r\nFrom: <sip:1001@127.0.0.1>;tag=at\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:a@127.0.0.1:5888>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                inv.headers.get(&HeaderName::From).unwrap(),
                inv.call_id().unwrap(),
                sdp.len()
            );
            let SipMessage::Request(reinvite) = SipMessage::parse(raw.as_bytes()).unwrap() else {
                unreachable!()
            };
            w.take_media();
            w.call.handle_sip(
                w.now,
                SipInput::Request {
                    tx: TxId::for_test(60 + cseq),
                    request: reinvite,
                    source: peer(5888),
                },
            );
            w.pump();
            if dir == "sendonly" {
                assert!(
                    w.media.iter().any(|m| matches!(m, MediaOp::Play { leg: LegId(18), looped: true, prompt, .. } if prompt.ends_with("hold-music.wav"))),
                    "{:?}",
                    w.media
                );
            } else {
                assert!(
                    w.media.contains(&MediaOp::StopPlay { leg: LegId(18) }),
                    "{:?}",
                    w.media
                );
            }
        }
        assert!(w.call.agent_connected());
    }

    #[test]
    fn a_blind_transfer_to_a_queue_frees_the_agent_and_queues_the_caller_there() {
        let (mut w, inv) = connected_to_1001();
        agent_refers(&mut w, &inv, "120");
        routed(
            &mut w,
            "120",
            Ok(Route::Hosted(Service::Queue("service".into()))),
        );
        assert_eq!(notified(&w), vec!["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]);
        assert!(
            w.sip.iter().any(
                |s| matches!(s, SipCommand::Send { request, .. } if request.method == Method::Bye)
            ),
            "the transferring agent is hung up"
        );
        let acd = w.take_acd();
        assert!(
            matches!(&acd[..], [AcdEvent::CallEnded { agent, .. }, AcdEvent::CallQueued { queue, .. }] if agent == "1001" && queue == "service"),
            "{acd:?}"
        );
        assert!(
            matches!(w.media.last(), Some(MediaOp::Play { looped: true, prompt, .. }) if prompt.ends_with("hold-music.wav"))
        );
        // The service queue's agent takes the caller.
        w.offer("2001", "service");
        let (req, inv2) = w.resolve_and_ring(agent_target("2001"));
        w.agent_says(req, &inv2, 200);
        assert!(w.call.agent_connected());
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::OfferAnswered { agent, .. }] if agent == "2001")
        );
    }

    #[test]
    fn a_blind_transfer_to_an_agent_dials_them_with_music_meanwhile() {
        let (mut w, inv) = connected_to_1001();
        agent_refers(&mut w, &inv, "2001");
        w.take_media();
        routed(&mut w, "2001", Ok(Route::Direct(agent_target("2001"))));
        let acd = w.take_acd();
        assert!(
            matches!(&acd[..], [AcdEvent::CallEnded { agent, .. }, AcdEvent::DirectCallStarted { agent: b }] if agent == "1001" && b == "2001"),
            "{acd:?}"
        );
        assert!(
            w.media
                .iter()
                .any(|m| matches!(m, MediaOp::Play { looped: true, .. }))
        );
        w.call
            .media_ready(w.now, LegId(19), "127.0.0.1:40004".parse().unwrap());
        w.pump();
        let (req, inv2) = w
            .sip
            .iter()
            .rev()
            .find_map(|s| match s {
                SipCommand::Send { req, request, .. } if request.method == Method::Invite => {
                    Some((*req, request.clone()))
                }
                _ => None,
            })
            .expect("INVITE to the new agent");
        assert!(inv2.uri.to_string().starts_with("sip:2001@"));
        w.agent_says(req, &inv2, 200);
        assert!(w.call.agent_connected());
        w.call.hang_up(w.now, EndCause::Completed);
        w.pump();
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::DirectCallEnded { agent }] if agent == "2001")
        );
    }

    #[test]
    fn a_blind_transfer_to_an_unknown_number_leaves_the_agent_with_the_caller() {
        let (mut w, inv) = connected_to_1001();
        agent_refers(&mut w, &inv, "999");
        routed(&mut w, "999", Err((404, "Not Found")));
        assert_eq!(
            notified(&w),
            vec!["SIP/2.0 100 Trying", "SIP/2.0 404 Not Found"]
        );
        assert!(w.take_acd().is_empty());
        assert!(w.call.agent_connected());
        w.call.hang_up(w.now, EndCause::Completed);
        w.pump();
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::CallEnded { agent, .. }] if agent == "1001"),
            "the agent's call ends as a queue call"
        );
    }

    #[test]
    fn a_failed_offer_keeps_the_caller_queued_and_an_unreachable_agent_fails_at_once() {
        let mut w = World::start(Service::Queue("sales".into()));
        assert!(matches!(&w.take_acd()[..], [AcdEvent::CallQueued { .. }]));
        w.offer("1001", "sales");
        let (req, inv) = w.resolve_and_ring(agent_target("1001"));
        w.agent_says(req, &inv, 486);
        assert!(matches!(
            &w.take_acd()[..],
            [AcdEvent::OfferFailed {
                reason: OfferFailure::Busy,
                ..
            }]
        ));
        assert!(!w.call.is_ended());
        // An agent whose phone is gone: the offer fails without a dial.
        w.offer("1002", "sales");
        w.call.handle_sip(
            w.now,
            SipInput::Resolved {
                number: "1002".into(),
                target: Err((480, "Temporarily Unavailable")),
            },
        );
        w.pump();
        assert!(
            matches!(&w.take_acd()[..], [AcdEvent::OfferFailed { reason: OfferFailure::Unreachable, agent, .. }] if agent == "1002")
        );
        // The caller hangs up: abandoned.
        w.call.hang_up(w.now, EndCause::CallerHangup);
        w.pump();
        assert!(matches!(
            &w.take_acd()[..],
            [AcdEvent::CallAbandoned { .. }]
        ));
    }

    #[test]
    fn an_answer_crossing_the_acds_cancel_is_let_go_and_the_caller_waits_on() {
        let mut w = World::start(Service::Queue("sales".into()));
        w.take_acd();
        w.offer("1001", "sales");
        let (req, inv) = w.resolve_and_ring(agent_target("1001"));
        w.agent_says(req, &inv, 200);
        assert!(w.call.agent_connected());
        w.take_media();
        w.acd(AcdAction::CancelOffer {
            call: CallRef(9),
            agent: "1001".into(),
        });
        assert!(!w.call.agent_connected());
        assert!(w.sip.iter().any(
            |s| matches!(s, SipCommand::Send { request, .. } if request.method == Method::Bye)
        ));
        assert!(
            matches!(w.media.last(), Some(MediaOp::Play { looped: true, .. })),
            "music again"
        );
    }

    #[test]
    fn overflow_to_voicemail_greets_records_and_a_hash_ends_with_goodbye() {
        let mut w = World::start(Service::Queue("service".into()));
        w.take_acd();
        w.acd(AcdAction::Overflow {
            call: CallRef(9),
            target: OverflowTarget::Voicemail("general".into()),
            reason: OverflowReason::MaxWait,
        });
        assert_eq!(w.last_play().1, "voicemail-greeting.wav");
        w.prompt_done();
        w.prompt_done();
        let rec = w
            .media
            .iter()
            .find_map(|m| match m {
                MediaOp::StartRecording { path, .. } => Some(path.clone()),
                _ => None,
            })
            .expect("recording");
        assert!(rec.starts_with("/tmp/vm/general"), "{}", rec.display());
        assert!(w.host.poll_timeout().is_some(), "the length limit runs");
        w.call.dtmf(w.now, LegId(18), '#');
        w.pump();
        assert!(w.media.contains(&MediaOp::StopRecording));
        assert_eq!(w.last_play().1, "goodbye.wav");
        w.host.recorded(rec.clone(), Duration::from_secs(7));
        w.pump();
        assert!(
            matches!(&w.host_out[..], [HostOutput::Voicemail(v)] if v.mailbox == "general" && v.caller == "+4930111001" && v.duration == Duration::from_secs(7))
        );
        w.prompt_done();
        assert!(
            w.sip.iter().any(
                |s| matches!(s, SipCommand::Send { request, .. } if request.method == Method::Bye)
            ),
            "hung up after goodbye"
        );
    }

    #[test]
    fn a_voicemail_runs_out_at_the_length_limit() {
        let mut w = World::start(Service::Voicemail("general".into()));
        w.prompt_done();
        w.prompt_done();
        let deadline = w.host.poll_timeout().expect("limit");
        assert_eq!(deadline, w.now + Duration::from_secs(60));
        w.now = deadline;
        let t = w.t();
        w.host.handle_timeout(&mut w.call, t);
        w.pump();
        assert!(w.media.contains(&MediaOp::StopRecording));
        assert_eq!(w.last_play().1, "goodbye.wav");
    }

    #[test]
    fn a_supervisors_keys_switch_modes_and_the_session_is_audited() {
        use crate::call::{Linked, Side};
        let mut w = World::start(Service::Monitor(MonitorTarget {
            agent: "1001".into(),
            supervisor: "9001".into(),
            call: Some((CallKey(3), Side::Agent)),
        }));
        let asked: Vec<_> = w
            .sip
            .iter()
            .filter_map(|c| match c {
                SipCommand::Tell { to, msg } => Some((*to, msg.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            asked,
            vec![(
                CallKey(3),
                Linked::MonitorRequest {
                    monitor: CallKey(9),
                    leg: LegId(18),
                    agent_side: Side::Agent,
                    mode: MonitorMode::Listen
                }
            )]
        );
        w.call
            .handle_sip(w.now, SipInput::Linked(Linked::MonitorStarted));
        w.pump();
        w.sip.clear();
        // 2 whisper, 2 again (no change), 9 (no mode), 3 barge.
        for key in ['2', '2', '9', '3'] {
            w.wall += Duration::from_secs(10);
            w.call.dtmf(w.now, LegId(18), key);
            w.pump();
        }
        let modes: Vec<_> = w
            .sip
            .iter()
            .filter_map(|c| match c {
                SipCommand::Tell {
                    msg: Linked::MonitorMode { mode, .. },
                    ..
                } => Some(*mode),
                _ => None,
            })
            .collect();
        assert_eq!(modes, vec![MonitorMode::Whisper, MonitorMode::Barge]);
        // The agent's call ends: the supervisor's call hangs up and the session is logged.
        w.wall += Duration::from_secs(5);
        w.call.handle_sip(
            w.now,
            SipInput::Linked(Linked::MonitorOver {
                code: 200,
                reason: "the monitored call ended",
            }),
        );
        w.pump();
        let logged: Vec<_> = w
            .host_out
            .iter()
            .filter_map(|o| match o {
                HostOutput::Monitor(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(logged.len(), 1);
        let m = &logged[0];
        assert_eq!((m.supervisor.as_str(), m.agent.as_str()), ("9001", "1001"));
        assert_eq!((m.call, m.monitored), (CallKey(9), CallKey(3)));
        assert!(m.connected);
        assert_eq!(m.outcome, "the monitored call ended");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            m.modes,
            vec![
                (t0, MonitorMode::Listen),
                (t0 + Duration::from_secs(10), MonitorMode::Whisper),
                (t0 + Duration::from_secs(40), MonitorMode::Barge),
            ]
        );
        assert_eq!(m.ended_at, t0 + Duration::from_secs(45));
    }
}
