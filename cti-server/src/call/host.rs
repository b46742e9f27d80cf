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

use super::router::Service;
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

    /// The lead matched so far (IVR lookup), for the screen pop and the records.
    pub fn lead(&self) -> Option<&LeadMatch> {
        self.lead.as_ref()
    }

    /// The IVR variables of the call (collected digits, lookups), for the screen pop.
    pub fn variables(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.ivr.as_ref().map(Session::variables)
    }

    /// A recording of this call closed (voicemail).
    pub fn recorded(&mut self, path: PathBuf, duration: Duration) {
        let Some((mailbox, started_at)) = self.voicemail.take() else {
            return;
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
            Notice::Resolved(number, target) => self.resolved(call, number, *target),
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
            Notice::Ending(_) => {
                // A voicemail being recorded is closed by the call; its summary still comes
                // to [`Host::recorded`].
                match std::mem::replace(&mut self.phase, Phase::Done) {
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
    ) {
        match (&self.phase, target) {
            (Phase::Offering { agent, .. }, Ok(t)) if *agent == number => {
                let agent = agent.clone();
                let dialing = call.dial(t, None);
                if !dialing {
                    self.offer_failed_now(agent, OfferFailure::Unreachable);
                }
            }
            (Phase::Offering { agent, .. }, Err((code, _))) if *agent == number => {
                let agent = agent.clone();
                tracing::info!(call = %self.key, agent, code, "offered agent not reachable");
                self.offer_failed_now(agent, OfferFailure::Unreachable);
            }
            (Phase::Direct { number: n, .. }, Ok(t)) if *n == number => {
                let ring = self.config.direct_ring_timeout;
                if let Target::Agent { extension, .. } = &t {
                    self.acd(AcdEvent::DirectCallStarted {
                        agent: extension.clone(),
                    });
                }
                if !call.dial(t, Some(ring)) {
                    let mailbox = self.config.fallback_voicemail.clone();
                    self.start_voicemail(call, mailbox);
                }
            }
            (Phase::Direct { number: n, .. }, Err((code, _))) if *n == number => {
                tracing::info!(call = %self.key, number, code, "direct number not reachable: voicemail");
                let mailbox = self.config.fallback_voicemail.clone();
                self.start_voicemail(call, mailbox);
            }
            _ => {}
        }
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
