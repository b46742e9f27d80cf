//! Calls an agent places from the browser console (click-to-dial).
//!
//! The agent is already at the console, with its WebRTC media leg up ([`crate::softphone`]):
//! the browser places the call itself. Such a call has the console on the *caller* side, as a
//! call dialed from an agent's desk phone has the phone there, and the customer on the agent
//! side, reached through the outbound trunk with an INVITE like any other. So the record, the
//! recording (the customer in the right channel), the agent's keypad codes and supervision
//! treat both kinds of outbound call alike.
//!
//! The caller leg has no SIP: its INVITE is made up for the record (From the agent's
//! extension, the number dialed in the Request-URI) and nothing is ever sent to it. What a
//! SIP caller would be told goes to the console as [`SoftphoneEventKind`]s instead: dialing,
//! the far end ringing, connected, held, ended with the reason (busy, no answer, ...). The
//! console's buttons come back as [`SoftphoneInput`]s: hang up (a CANCEL while it rings),
//! hold (the customer hears hold music), keys (RFC 4733 to the customer), a reload
//! (re-attached like an answered call, [`super::browser`]).

use std::time::Instant;

use bytes::Bytes;
use media::engine::LegId;

use super::browser::{BrowserAgent, SoftphoneEventKind, SoftphoneInput};
use super::{
    AgentLeg, Call, CallConfig, CallKey, CallRecord, CallerLeg, EndCause, MediaOp, Side, State,
    Target, local_media,
};
use crate::sdp::{Codec, Negotiated};
use crate::sip::grammar::{SipUri, Uri};
use crate::sip::message::{HeaderName, Request};
use crate::sip::transaction::TxId;
use crate::sip::types::{CallId, Method, Tag};

/// Who places a call from their console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placer {
    pub extension: String,
    /// Shown to the record as the From display name.
    pub name: String,
    /// The console's softphone session and media leg.
    pub session: u64,
    pub leg: LegId,
}

impl Call {
    /// A call `placer` places to `target` (the trunk) from their console. The call makes
    /// one media leg, `own_leg`, for the customer; the INVITE goes out when it is up.
    #[allow(clippy::too_many_arguments)]
    pub fn new_placed(
        key: CallKey,
        config: CallConfig,
        now: Instant,
        wall_ms: i64,
        placer: Placer,
        number: &str,
        target: Target,
        own_leg: LegId,
    ) -> Call {
        let invite = placed_invite(&config, &placer, number);
        let mut record = CallRecord::new(key, &invite, wall_ms);
        record.target = Some(target.clone());
        let codec = config.codecs.first().copied().unwrap_or(Codec::Pcmu);
        let (dest, contact) = match (target.peer(), target.request_uri()) {
            (Some(p), Some(u)) => (p, u.clone()),
            // Only the trunk is dialed from a console (see [`crate::sip::core`]); anything
            // else gets no INVITE and fails at the ring timeout.
            _ => (
                crate::sip::transaction::Peer {
                    transport: crate::sip::types::Transport::Udp,
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
                },
                invite.uri.clone(),
            ),
        };
        let caller = CallerLeg {
            tx: TxId::DETACHED,
            source: dest,
            local_tag: Tag::generate(),
            dialog: None,
            offer: None,
            media: local_media(config.media_ip),
            leg: placer.leg,
            negotiated: Negotiated::pending(codec),
            answer: None,
            late_answered: false,
            finalized: false,
            bye: None,
            console: Some(BrowserAgent {
                extension: placer.extension.clone(),
                session: placer.session,
                ringing: false,
                connected: true,
                held: false,
                lost: false,
            }),
            invite,
        };
        let agent = AgentLeg::new(own_leg, config.media_ip, dest, contact);
        let mut call = Call::assemble(key, config, now, record, caller, agent);
        call.legs_pending = 1;
        call.media(MediaOp::CreateLeg {
            leg: own_leg,
            side: Side::Agent,
            params: call.agent_leg_params(),
        });
        call.softphone_event(SoftphoneEventKind::Dialing {
            number: number.to_string(),
            ringing: false,
        });
        tracing::info!(call = %key, agent = %placer.extension, number, "call placed from the console");
        call
    }

    /// True for a call placed from a console.
    pub fn is_placed(&self) -> bool {
        self.caller.console.is_some()
    }

    /// The console that placed this call is in it (not hung up).
    pub(super) fn console_connected(&self) -> bool {
        self.caller.console.as_ref().is_some_and(|b| b.connected)
    }

    /// The number a console placed this call to.
    fn placed_number(&self) -> String {
        self.record.dialed.clone()
    }

    /// The far end answers 18x: the console hears its early audio (a carrier's ringback or
    /// announcement) when it sent some, and shows it ringing.
    pub(super) fn placed_progress(&mut self, resp: &crate::sip::message::Response) {
        if !resp.body.is_empty() && self.take_agent_answer(resp) {
            self.bridge();
        }
        let number = self.placed_number();
        self.softphone_event(SoftphoneEventKind::Dialing {
            number,
            ringing: true,
        });
    }

    /// The far end answered: the console talks to the customer.
    pub(super) fn placed_answered(&mut self, now: Instant) {
        self.ring_deadline = None;
        self.bridge();
        self.caller.finalized = true;
        self.state = State::Talking;
        self.record.answer_after = Some(self.elapsed(now));
        tracing::info!(call = %self.key, "placed call answered");
        let caller = self.placed_number();
        self.softphone_event(SoftphoneEventKind::Connected {
            caller,
            held: false,
        });
    }

    /// The call is ending: the console's leg leaves the room (it stays up for the next
    /// call) and the console is told why, in its agent's words.
    pub(super) fn hang_up_console(&mut self) {
        let Some(b) = self.caller.console.as_mut().filter(|b| b.connected) else {
            return;
        };
        b.connected = false;
        let in_room = !b.held && !b.lost;
        if in_room {
            self.media(MediaOp::Leave {
                leg: self.caller.leg,
            });
        }
        let reason = placed_end_reason(self.record.end_cause, self.record.ended_by);
        self.softphone_event(SoftphoneEventKind::Ended { reason });
    }

    /// Input from the console that placed this call.
    pub(super) fn placed_input(&mut self, now: Instant, agent: &str, input: SoftphoneInput) {
        let Some(b) = self.caller.console.clone() else {
            return;
        };
        if b.extension != agent || !b.connected {
            return;
        }
        let talking = self.state == State::Talking;
        match input {
            SoftphoneInput::Hangup | SoftphoneInput::Gone => {
                let cause = match (talking, &input) {
                    // The console's media went away and did not come back.
                    (_, SoftphoneInput::Gone) => EndCause::MediaTimeout,
                    (true, _) => EndCause::CallerHangup,
                    (false, _) => EndCause::CallerCancelled,
                };
                self.end(now, cause, Some(Side::Caller));
            }
            SoftphoneInput::Hold(held) if talking && !b.lost && b.held != held => {
                if let Some(b) = self.caller.console.as_mut() {
                    b.held = held;
                }
                self.set_console_hold(now, held);
                self.softphone_event(SoftphoneEventKind::Held(held));
            }
            SoftphoneInput::Digit(d) if talking => {
                // As from a desk phone: the agent's keypad code, else a key to the customer.
                let leg = self.caller.leg;
                self.dtmf(now, leg, d);
            }
            SoftphoneInput::Transfer(_) => {
                self.softphone_event(SoftphoneEventKind::Transfer {
                    status: "a call you placed cannot be transferred".into(),
                    done: true,
                });
            }
            SoftphoneInput::Lost => {
                if let Some(b) = self.caller.console.as_mut() {
                    b.lost = true;
                }
                tracing::info!(call = %self.key, agent, "console lost: customer on hold");
                if talking && !b.held {
                    self.set_console_hold(now, true);
                } else if !talking && self.agent.bridged {
                    // Early audio from the far end: the console's leg is going.
                    self.media(MediaOp::Leave {
                        leg: self.caller.leg,
                    });
                }
            }
            SoftphoneInput::Reattach { session, leg } => {
                self.placed_reattach(now, b, session, leg);
            }
            SoftphoneInput::Answer | SoftphoneInput::Decline => {}
            SoftphoneInput::Hold(_) | SoftphoneInput::Digit(_) => {}
        }
    }

    /// A reload: the new console's leg takes the old one's place, held if the agent had held.
    fn placed_reattach(&mut self, now: Instant, b: BrowserAgent, session: u64, leg: LegId) {
        let old = self.caller.leg;
        let talking = self.state == State::Talking;
        if !b.lost && !b.held && self.agent.bridged {
            // Another window took over while this one was still in the call.
            self.media(MediaOp::Leave { leg: old });
        }
        self.caller.leg = leg;
        if let Some(c) = self.caller.console.as_mut() {
            c.session = session;
            c.lost = false;
        }
        tracing::info!(call = %self.key, "console back: placed call re-attached");
        if talking {
            if !b.held {
                self.set_console_hold(now, false);
            }
            let caller = self.placed_number();
            self.softphone_event(SoftphoneEventKind::Connected {
                caller,
                held: b.held,
            });
        } else {
            if self.agent.bridged {
                // Early audio: the new leg hears it too.
                self.media(MediaOp::Bridge {
                    caller: leg,
                    agent: self.agent.leg,
                });
            }
            let number = self.placed_number();
            self.softphone_event(SoftphoneEventKind::Dialing {
                number,
                ringing: self.record.ring_after.is_some(),
            });
        }
    }

    /// Hold from the console: its leg leaves the room and the customer hears hold music;
    /// resuming stops the music and brings the leg back.
    fn set_console_hold(&mut self, now: Instant, held: bool) {
        self.set_hold(now, held.then_some(Side::Caller));
        let customer = self.agent.leg;
        if held {
            self.media(MediaOp::Leave {
                leg: self.caller.leg,
            });
            if let Some(music) = self.config.hold_music.clone() {
                self.media(MediaOp::Play {
                    leg: customer,
                    prompt: music,
                    id: 0,
                    looped: true,
                    interruptible: false,
                });
            }
        } else {
            self.media(MediaOp::StopPlay { leg: customer });
            self.media(MediaOp::Bridge {
                caller: self.caller.leg,
                agent: customer,
            });
            self.relink_watchers();
        }
    }
}

/// What the console shows when a placed call ends.
fn placed_end_reason(cause: Option<EndCause>, by: Option<Side>) -> String {
    let text = match cause {
        Some(EndCause::CallerHangup | EndCause::CallerCancelled) => "you hung up",
        Some(EndCause::MediaTimeout) if by == Some(Side::Caller) => {
            "your console did not come back"
        }
        Some(EndCause::AgentHangup) => "the customer hung up",
        Some(EndCause::AgentBusy) => "busy",
        Some(EndCause::NoAnswer) => "no answer",
        Some(EndCause::AgentRejected(603)) => "the customer declined the call",
        Some(EndCause::AgentRejected(403)) => "the trunk refused the call (403)",
        Some(EndCause::AgentRejected(404 | 484 | 604)) => "the number does not exist",
        Some(EndCause::AgentRejected(_)) => "the call could not be put through",
        Some(EndCause::AgentUnreachable) => "the trunk did not answer",
        Some(EndCause::MediaTimeout) => "no audio from the customer",
        Some(EndCause::MediaError) => "no common codec with the far end",
        Some(EndCause::Shutdown) => "the server is shutting down",
        _ if by == Some(Side::Agent) => "the customer hung up",
        _ => "the call ended",
    };
    text.to_string()
}

/// The INVITE a console's call would have sent, for the record: From the agent, the number
/// in the Request-URI and To.
fn placed_invite(config: &CallConfig, placer: &Placer, number: &str) -> Request {
    let host = &config.host;
    let port = Some(config.sip_port);
    let uri = SipUri::new(Some(number), host, port);
    let mut invite = Request::new(Method::Invite, Uri::Sip(uri.clone()));
    let h = &mut invite.headers;
    let from = SipUri::new(Some(&placer.extension), host, port);
    let name = placer.name.replace(['"', '\\'], "");
    h.push(
        HeaderName::From,
        format!("\"{name}\" <{from}>;tag={}", Tag::generate()),
    );
    h.push(HeaderName::To, format!("<{uri}>"));
    h.push(HeaderName::CallId, CallId::generate(host).to_string());
    h.push(HeaderName::CSeq, "1 INVITE");
    h.push(HeaderName::MaxForwards, "70");
    invite.body = Bytes::new();
    invite
}
