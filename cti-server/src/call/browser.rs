//! The agent leg of a call answered in the agent's browser ([`Target::Browser`]).
//!
//! A browser console holds one WebRTC media leg for as long as it is open
//! ([`crate::softphone`]); calls do not make media legs for it. Dialing a browser agent sends
//! [`SoftphoneEvent`]s to the console over its WebSocket instead of an INVITE, and the
//! console's buttons come back as [`SoftphoneInput`]s. On answer the console's leg joins the
//! call's room; when the call ends (or the agent hangs up or transfers) the leg *leaves* the
//! room and stays up for the next call.
//!
//! A console that goes away mid-call (a page reload, a dropped network) is [`SoftphoneInput::Lost`]:
//! the customer hears hold music, and the call waits for [`SoftphoneInput::Reattach`] with the
//! new console's leg. How long it waits is the softphone registry's business (it sends
//! [`SoftphoneInput::Gone`] when the grace period is over).

use std::time::{Duration, Instant};

use media::engine::LegId;

use super::{Call, EndCause, MediaOp, Notice, Output, Side, State, Target};

/// What an agent's console asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoftphoneInput {
    /// Answer the ringing call.
    Answer,
    /// Refuse the ringing call (the ACD offers it elsewhere).
    Decline,
    /// Hang up (the customer gets a BYE).
    Hangup,
    /// Put the customer on hold (music) or take them back.
    Hold(bool),
    /// A key on the console's keypad, sent on to the customer as RFC 4733 events.
    Digit(char),
    /// Blind transfer to a number (a queue, an agent, an external number).
    Transfer(String),
    /// The console's socket closed: the customer hears hold music meanwhile.
    Lost,
    /// The console is back (same agent, new page) with a new media leg.
    Reattach { session: u64, leg: LegId },
    /// The console did not come back in time: the call ends (or, ringing, fails over).
    Gone,
}

/// What a call tells its agent's console.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftphoneEvent {
    /// The agent's extension (whose console).
    pub agent: String,
    pub session: u64,
    pub kind: SoftphoneEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SoftphoneEventKind {
    /// The call rings on the console.
    Ringing { caller: String, dialed: String },
    /// A call the agent placed from the console goes out; `ringing` once the far end rings.
    Dialing { number: String, ringing: bool },
    /// The ring stopped without an answer (taken elsewhere, ring timeout, caller gone).
    Cancelled,
    /// The console's leg is in the call: audio flows (unless `held`).
    Connected { caller: String, held: bool },
    /// The customer is on hold (`true`) or back.
    Held(bool),
    /// A blind transfer's progress: a status line, and whether it is over.
    Transfer { status: String, done: bool },
    /// The console's part in the call is over (`reason` for the display).
    Ended { reason: String },
}

/// The browser side of an agent leg.
#[derive(Debug, Clone)]
pub(super) struct BrowserAgent {
    pub(super) extension: String,
    pub(super) session: u64,
    /// Ringing, not answered yet.
    pub(super) ringing: bool,
    /// Answered and not hung up.
    pub(super) connected: bool,
    /// The agent put the customer on hold.
    pub(super) held: bool,
    /// The console went away; the customer hears music until it is back.
    pub(super) lost: bool,
}

impl Call {
    /// Dials a browser agent: the console rings at once (its media leg exists already).
    pub(super) fn dial_browser(&mut self, now: Instant, target: Target, ring: Option<Duration>) {
        let Target::Browser {
            extension,
            session,
            leg,
        } = &target
        else {
            return;
        };
        let mut agent = super::AgentLeg::new(
            *leg,
            self.config.media_ip,
            self.caller.source,
            self.caller.invite.uri.clone(),
        );
        agent.browser = Some(BrowserAgent {
            extension: extension.clone(),
            session: *session,
            ringing: true,
            connected: false,
            held: false,
            lost: false,
        });
        self.agent = agent;
        self.record.target = Some(target);
        self.ring_deadline = ring.map(|t| now + t);
        if self.record.ring_after.is_none() {
            self.record.ring_after = Some(self.elapsed(now));
        }
        let (caller, dialed) = self.caller_and_dialed();
        self.softphone_event(super::browser::SoftphoneEventKind::Ringing { caller, dialed });
        self.out.push_back(Output::Notice(Notice::AgentRinging));
    }

    pub(super) fn browser_ringing(&self) -> bool {
        self.agent.browser.as_ref().is_some_and(|b| b.ringing)
    }

    pub(super) fn browser_connected(&self) -> bool {
        self.agent.browser.as_ref().is_some_and(|b| b.connected)
    }

    /// The extension of the browser console this call rings or is connected to.
    pub fn browser_agent(&self) -> Option<(&str, u64)> {
        self.caller
            .console
            .as_ref()
            .or(self.agent.browser.as_ref())
            .filter(|b| b.ringing || b.connected)
            .map(|b| (b.extension.as_str(), b.session))
    }

    /// A ringing console is told the ring is over (no notice to the service: it cancelled,
    /// or hears of the failure separately).
    pub(super) fn cancel_browser_ring(&mut self) -> bool {
        let Some(b) = self.agent.browser.as_mut().filter(|b| b.ringing) else {
            return false;
        };
        b.ringing = false;
        self.ring_deadline = None;
        self.softphone_event(SoftphoneEventKind::Cancelled);
        true
    }

    /// The console's part ends: its leg leaves the room (it stays up for the next call).
    pub(super) fn hang_up_browser(&mut self, reason: &str) -> bool {
        let Some(b) = self.agent.browser.as_mut().filter(|b| b.connected) else {
            return false;
        };
        b.connected = false;
        let in_room = !b.held && !b.lost;
        let leg = self.agent.leg;
        if in_room {
            self.media(MediaOp::Leave { leg });
        }
        self.softphone_event(SoftphoneEventKind::Ended {
            reason: reason.to_string(),
        });
        true
    }

    /// Input from the agent's console for this call.
    pub fn softphone(&mut self, now: Instant, agent: &str, input: SoftphoneInput) {
        if self.caller.console.is_some() {
            self.placed_input(now, agent, input);
            return;
        }
        let Some(b) = self.agent.browser.clone() else {
            return;
        };
        if b.extension != agent {
            return;
        }
        let live = matches!(self.state, State::Hosted | State::Talking);
        match input {
            SoftphoneInput::Answer if b.ringing && live => {
                if let Some(b) = self.agent.browser.as_mut() {
                    b.ringing = false;
                    b.connected = true;
                }
                self.ring_deadline = None;
                self.agent.answered = true;
                self.agent.finished = true;
                self.stop_play();
                self.bridge();
                self.record.connect_after = Some(self.elapsed(now));
                tracing::info!(call = %self.key, agent, "agent answered in the browser");
                self.out.push_back(Output::Notice(Notice::AgentAnswered));
                let (caller, _) = self.caller_and_dialed();
                self.softphone_event(SoftphoneEventKind::Connected {
                    caller,
                    held: false,
                });
            }
            SoftphoneInput::Answer => {
                // Too late: the ring was withdrawn as the agent clicked.
                self.softphone_event(SoftphoneEventKind::Ended {
                    reason: "the call is no longer there".into(),
                });
            }
            SoftphoneInput::Decline if b.ringing => {
                self.cancel_browser_ring();
                self.agent_attempt_failed(EndCause::AgentRejected(603));
            }
            SoftphoneInput::Hangup if b.connected => {
                self.end(now, EndCause::AgentHangup, Some(Side::Agent));
            }
            SoftphoneInput::Hold(held) if b.connected && !b.lost && b.held != held => {
                if let Some(b) = self.agent.browser.as_mut() {
                    b.held = held;
                }
                self.set_browser_hold(now, held);
                self.softphone_event(SoftphoneEventKind::Held(held));
            }
            SoftphoneInput::Digit(d) if b.connected => {
                let leg = self.agent.leg;
                self.dtmf(now, leg, d);
            }
            SoftphoneInput::Transfer(number) if b.connected => {
                if let Err(why) = self.browser_transfer(number) {
                    self.softphone_event(SoftphoneEventKind::Transfer {
                        status: why.to_string(),
                        done: true,
                    });
                }
            }
            SoftphoneInput::Lost if b.connected => {
                if let Some(b) = self.agent.browser.as_mut() {
                    b.lost = true;
                }
                tracing::info!(call = %self.key, agent, "console lost mid-call: caller on hold");
                if !b.held {
                    self.set_browser_hold(now, true);
                }
            }
            SoftphoneInput::Lost if b.ringing => {
                self.cancel_browser_ring();
                self.agent_attempt_failed(EndCause::AgentUnreachable);
            }
            SoftphoneInput::Reattach { session, leg } if b.connected => {
                let old = self.agent.leg;
                if !b.lost && !b.held {
                    // Another window took over while this one was still in the call.
                    self.media(MediaOp::Leave { leg: old });
                }
                self.agent.leg = leg;
                if let Some(b) = self.agent.browser.as_mut() {
                    b.session = session;
                    b.lost = false;
                }
                tracing::info!(call = %self.key, agent, "console back: call re-attached");
                // Back as it was: held if the agent had held, else talking.
                if !b.held {
                    self.set_browser_hold(now, false);
                }
                let (caller, _) = self.caller_and_dialed();
                self.softphone_event(SoftphoneEventKind::Connected {
                    caller,
                    held: b.held,
                });
            }
            SoftphoneInput::Reattach { session, .. } if b.ringing => {
                if let Some(b) = self.agent.browser.as_mut() {
                    b.session = session;
                }
                let (caller, dialed) = self.caller_and_dialed();
                self.softphone_event(SoftphoneEventKind::Ringing { caller, dialed });
            }
            SoftphoneInput::Gone if b.connected => {
                if let Some(b) = self.agent.browser.as_mut() {
                    b.connected = false;
                }
                self.end(now, EndCause::AgentUnreachable, Some(Side::Agent));
            }
            SoftphoneInput::Gone if b.ringing => {
                self.cancel_browser_ring();
                self.agent_attempt_failed(EndCause::AgentUnreachable);
            }
            _ => {}
        }
    }

    /// Hold without SDP: the console's leg leaves the call's room (so it can take another
    /// line) and the service plays the customer music, as for a phone's re-INVITE with
    /// `a=sendonly`; resuming brings the leg back into the room.
    fn set_browser_hold(&mut self, now: Instant, held: bool) {
        self.set_hold(now, held.then_some(Side::Agent));
        let leg = self.agent.leg;
        if held {
            self.media(MediaOp::Leave { leg });
        } else {
            self.media(MediaOp::Bridge {
                caller: self.caller.leg,
                agent: leg,
            });
            self.relink_watchers();
        }
        if self.hosted.is_some() {
            self.out.push_back(Output::Notice(Notice::AgentHold(held)));
        }
    }

    pub(super) fn softphone_event(&mut self, kind: SoftphoneEventKind) {
        let Some(b) = self.caller.console.as_ref().or(self.agent.browser.as_ref()) else {
            return;
        };
        self.out.push_back(Output::Softphone(SoftphoneEvent {
            agent: b.extension.clone(),
            session: b.session,
            kind,
        }));
    }
}
