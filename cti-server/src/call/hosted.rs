//! Hosted calls: the server answers the caller itself and a service (an IVR flow, a queue,
//! voicemail) drives the call through [`Call::play`], [`Call::dial`], [`Call::cancel_dial`],
//! [`Call::start_recording`] and [`Call::hang_up`], hearing back through
//! [`Output::Notice`].
//!
//! The caller leg is the same as in a relayed call (dialog, re-INVITE, session timers, BYE);
//! what differs is the agent leg: it is dialed any number of times, one attempt at a time, each
//! with its own media leg, and a failed attempt leaves the caller where they were (in the
//! queue, hearing hold music) instead of ending the call. The first answered attempt is
//! bridged with the caller and the call then behaves like a relayed one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use media::engine::LegId;

use super::{
    AgentLeg, Call, CallConfig, CallKey, EndCause, MediaOp, Notice, Output, Side, State, Target,
};
use crate::sip::dialog::Dialog;
use crate::sip::message::{HeaderName, Request, Response, SipHeaders};
use crate::sip::transaction::{Peer, TxId};

/// The prompt sequence a hosted call is playing.
#[derive(Debug, Default)]
pub(super) struct HostedState {
    /// Id of the current play (echoed by the engine when a prompt ends).
    play_id: u64,
    prompts: Vec<PathBuf>,
    /// Index of the prompt playing now; `None` when nothing plays.
    playing: Option<usize>,
    looped: bool,
    interruptible: bool,
    /// The dial waiting for the agent media leg, with its ring timeout.
    pending_dial: Option<Option<Duration>>,
    pub(super) recording: bool,
    /// Cancelled dials whose INVITE has not finished yet: (request ref, INVITE, where).
    /// A 200 that crosses our CANCEL is acknowledged and hung up; the next dial does not
    /// wait for them.
    pub(super) abandoned: Vec<(super::ReqRef, Request, Peer)>,
}

impl Call {
    /// Starts a call the server answers itself once the caller's media leg is up
    /// ([`Notice::Answered`]). When the offer cannot be used, the error is the final response
    /// the caller gets at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new_hosted(
        key: CallKey,
        config: CallConfig,
        now: Instant,
        wall_ms: i64,
        tx: TxId,
        invite: Request,
        source: Peer,
        legs: (LegId, LegId),
        service: String,
    ) -> Result<Call, Response> {
        let mut call = Call::build(key, config, now, wall_ms, tx, invite, source, legs)?;
        call.hosted = Some(HostedState::default());
        call.record.services.push(service);
        Ok(call)
    }

    /// True for a call the server answered itself.
    pub fn is_hosted(&self) -> bool {
        self.hosted.is_some()
    }

    /// Notes the service now handling the call (a queue after the IVR, say) for the record.
    pub fn add_service(&mut self, service: String) {
        if self.record.services.last() != Some(&service) {
            self.record.services.push(service);
        }
    }

    /// The agent extension the call is put through to (a direct call), if any.
    pub fn agent_extension(&self) -> Option<&str> {
        self.record
            .target
            .as_ref()
            .and_then(Target::agent_extension)
    }

    /// The services the call went through, in order (`flow:main`, `queue:sales`).
    pub fn services(&self) -> &[String] {
        &self.record.services
    }

    /// The caller's number (From user) and the dialed number, for the service.
    pub fn caller_and_dialed(&self) -> (String, String) {
        let from = self
            .caller
            .invite
            .from_header()
            .and_then(|f| f.uri.as_sip().and_then(|u| u.user_unescaped()))
            .unwrap_or_default();
        (from, self.record.dialed.clone())
    }

    /// Plays `prompts` one after the other to the caller, replacing whatever plays. With
    /// `looped` the sequence starts again at its end (hold music) and never finishes; with
    /// `interruptible` a key stops it. [`Notice::PromptFinished`] follows the last prompt.
    pub fn play(&mut self, prompts: Vec<PathBuf>, looped: bool, interruptible: bool) {
        if !self.caller_live() {
            return;
        }
        let leg = self.caller.leg;
        let Some(h) = self.hosted.as_mut() else {
            return;
        };
        h.play_id += 1;
        h.looped = looped;
        h.interruptible = interruptible;
        h.prompts = prompts;
        if h.prompts.is_empty() {
            h.playing = None;
            self.media(MediaOp::StopPlay { leg });
            self.out.push_back(Output::Notice(Notice::PromptFinished));
            return;
        }
        h.playing = Some(0);
        let op = play_op(leg, h, 0);
        self.media(op);
    }

    /// Stops the prompt sequence (no [`Notice::PromptFinished`] follows).
    pub fn stop_play(&mut self) {
        let leg = self.caller.leg;
        if let Some(h) = self.hosted.as_mut()
            && h.playing.take().is_some()
        {
            h.play_id += 1;
            self.media(MediaOp::StopPlay { leg });
        }
    }

    /// True while a prompt sequence plays.
    pub fn is_playing(&self) -> bool {
        self.hosted.as_ref().is_some_and(|h| h.playing.is_some())
    }

    /// The engine says a prompt on `leg` ended: the next one of the sequence starts, or the
    /// service hears that it finished. Ends of earlier plays (a prompt that ended on the
    /// engine's clock just as the next play was asked for) are ignored.
    pub fn prompt_ended(&mut self, leg: LegId, id: u64, interrupted: bool) {
        if leg != self.caller.leg || !self.caller_live() {
            return;
        }
        let Some(h) = self.hosted.as_mut() else {
            return;
        };
        let Some(i) = h.playing else {
            return;
        };
        if id != h.play_id {
            return;
        }
        if interrupted {
            // The key that interrupted it comes as its own event.
            h.playing = None;
            return;
        }
        let next = if i + 1 < h.prompts.len() {
            Some(i + 1)
        } else if h.looped {
            Some(0)
        } else {
            None
        };
        match next {
            Some(n) => {
                h.playing = Some(n);
                let op = play_op(leg, h, n);
                self.media(op);
            }
            None => {
                h.playing = None;
                self.out.push_back(Output::Notice(Notice::PromptFinished));
            }
        }
    }

    /// A DTMF key on one of the call's legs. The caller's keys go to the service.
    pub fn dtmf(&mut self, now: Instant, leg: LegId, digit: char) {
        // Bridged: the key goes on to the other party as RFC 4733 events (an agent keying
        // through a customer's IVR on an outbound call, a caller entering a code the agent
        // asks for). Events are regenerated, not forwarded: the legs' payload types and
        // timestamps differ. Our side's keys may be a feature code first ([`super::keys`]).
        if self.agent.bridged && matches!(self.state, State::Talking | State::Hosted) {
            let other = if leg == self.caller.leg {
                self.agent.leg
            } else if leg == self.agent.leg {
                self.caller.leg
            } else {
                return;
            };
            if other == self.customer_leg() {
                let outs = self.keys.key(now, digit);
                self.agent_keys(outs);
            } else {
                self.media(MediaOp::SendDtmf { leg: other, digit });
            }
            return;
        }
        if leg == self.caller.leg && self.hosted.is_some() && self.caller_live() {
            if self.hosted.as_ref().is_some_and(|h| h.interruptible) {
                // The engine stopped an interruptible prompt on the key already.
                if let Some(h) = self.hosted.as_mut()
                    && h.playing.take().is_some()
                {
                    h.play_id += 1;
                }
            }
            self.out.push_back(Output::Notice(Notice::Digit(digit)));
        }
    }

    /// Dials an agent (or an external number through the trunk) for the caller. Returns
    /// false when the call cannot dial now (not answered yet, ending, or an attempt is
    /// already under way). The ring timeout, when given, is enforced here (CANCEL, then
    /// [`Notice::AgentFailed`] with [`EndCause::NoAnswer`]); the ACD passes `None` and
    /// cancels by itself.
    pub fn dial(&mut self, now: Instant, target: Target, ring_timeout: Option<Duration>) -> bool {
        if self.state != State::Hosted || self.agent.bridged {
            return false;
        }
        // A cancelled attempt still waiting for its 487 does not hold up the next one.
        if self.agent.cancelled
            && !self.agent.finished
            && let (Some(req), Some(invite)) = (self.agent.req, self.agent.invite.clone())
            && let Some(h) = self.hosted.as_mut()
        {
            h.abandoned.push((req, invite, self.agent.dest));
            self.agent.req = None;
            // Its early dialog (a 180 with a tag) ends with it.
            self.agent.dialog = None;
        }
        if self.agent.busy() {
            return false;
        }
        let Some(h) = self.hosted.as_mut() else {
            return false;
        };
        if h.pending_dial.is_some() {
            return false;
        }
        let (Some(peer), Some(uri)) = (target.peer(), target.request_uri().cloned()) else {
            self.dial_browser(now, target, ring_timeout);
            return true;
        };
        h.pending_dial = Some(ring_timeout);
        let leg = self.own_agent_leg;
        self.agent = AgentLeg::new(leg, self.config.media_ip, peer, uri);
        self.record.target = Some(target);
        self.create_agent_media(leg);
        true
    }

    /// Asks the SIP task where an agent extension or external number is reachable now;
    /// [`Notice::Resolved`] answers.
    pub fn resolve(&mut self, number: String) {
        self.sip(super::SipCommand::Resolve { number });
    }

    /// True while a dial is under way (media being prepared, INVITE in flight).
    pub fn is_dialing(&self) -> bool {
        self.hosted
            .as_ref()
            .is_some_and(|h| h.pending_dial.is_some())
            || (self.agent.req.is_some() && !self.agent.finished && !self.agent.cancelled)
            || self.browser_ringing()
    }

    /// True once an agent answered and is bridged with the caller.
    pub fn agent_connected(&self) -> bool {
        self.agent.bridged && (self.agent.dialog.is_some() || self.browser_connected())
    }

    /// Cancels the dial under way (ring-no-answer, ring-all answered elsewhere, the service
    /// moving the caller). The caller stays; no notice follows for this attempt.
    pub fn cancel_dial(&mut self, now: Instant) {
        let _ = now;
        if self.cancel_browser_ring() {
            return;
        }
        if let Some(h) = self.hosted.as_mut()
            && h.pending_dial.take().is_some()
        {
            // The media leg was still being made: the INVITE is never sent.
            self.release_agent_media();
            return;
        }
        if let Some(req) = self.agent.req
            && !self.agent.finished
            && !self.agent.cancelled
        {
            self.agent.cancelled = true;
            self.ring_deadline = None;
            self.sip(super::SipCommand::Cancel { req });
            // This attempt will never be bridged: its port goes now, so the next dial can
            // make its own leg.
            self.release_agent_media();
        }
    }

    /// A response to an abandoned attempt's INVITE ([`HostedState::abandoned`]). True when
    /// the response was one of theirs.
    pub(super) fn on_abandoned_attempt_response(
        &mut self,
        req: super::ReqRef,
        resp: &Response,
    ) -> bool {
        let Some(h) = self.hosted.as_mut() else {
            return false;
        };
        let Some(i) = h.abandoned.iter().position(|(r, _, _)| *r == req) else {
            return false;
        };
        if resp.code < 200 {
            return true;
        }
        let (_, invite, dest) = h.abandoned.remove(i);
        if resp.code < 300
            && let Ok(mut dialog) = Dialog::uac(&invite, resp)
        {
            // Answered as we cancelled: acknowledged (§13.2.2.4), then hung up.
            let via = crate::sip::dialog::LocalVia {
                transport: dest.transport,
                ..self.config.via.clone()
            };
            let ack = dialog.create_ack(super::cseq_of(&invite), &via);
            self.sip(super::SipCommand::Ack { request: ack, dest });
            let bye = dialog.create_request(crate::sip::types::Method::Bye, &via);
            let r = self.next_req();
            self.sip(super::SipCommand::Send {
                req: r,
                request: bye,
                dest,
            });
        }
        true
    }

    /// Hangs up on the bridged agent and takes the caller back (the answer crossed the ACD's
    /// cancel): the caller stays, hearing whatever the service plays next.
    pub fn drop_agent(&mut self, now: Instant) {
        let _ = now;
        if !self.agent.bridged || self.state != State::Hosted {
            return;
        }
        self.agent.bridged = false;
        self.send_bye(Side::Agent);
        self.release_agent_media();
    }

    /// Records what the caller says (voicemail) to `path`.
    pub fn start_recording(&mut self, path: PathBuf) {
        if !self.caller_live() {
            return;
        }
        // A call recording (the caller talked to an agent before) ends where the message
        // starts: the message is a file of its own.
        self.stop_call_recording();
        if let Some(h) = self.hosted.as_mut() {
            h.recording = true;
        }
        let leg = self.caller.leg;
        self.media(MediaOp::StartRecording { leg, path });
    }

    /// Closes the recording (the call goes on).
    pub fn stop_recording(&mut self) {
        if let Some(h) = self.hosted.as_mut()
            && std::mem::take(&mut h.recording)
        {
            self.media(MediaOp::StopRecording);
        }
    }

    /// The service ends the call (IVR hang-up, voicemail done, a queue with nowhere to go).
    pub fn hang_up(&mut self, now: Instant, cause: EndCause) {
        self.end(now, cause, None);
    }

    /// The caller is answered and not gone.
    fn caller_live(&self) -> bool {
        self.state == State::Hosted
    }

    /// Both of a hosted call's first media legs are up: answer the caller.
    pub(super) fn answer_hosted(&mut self, now: Instant) {
        if !self.make_caller_answer(now) {
            return;
        }
        let mut ok = self.caller_response(200, "OK", true);
        ok.headers
            .push(HeaderName::Contact, self.our_contact("cti"));
        ok.headers.push(HeaderName::Allow, super::ALLOW);
        self.start_session_timer(now, &mut ok);
        let mut dialog = Dialog::uas(&self.caller.invite, self.caller.local_tag.clone()).ok();
        if let Some(d) = &mut dialog {
            d.confirm();
        }
        self.caller.dialog = dialog;
        self.caller.finalized = true;
        if let Some(call_id) = self.caller.invite.call_id() {
            self.sip(super::SipCommand::BindDialog {
                call_id,
                local_tag: self.caller.local_tag.clone(),
            });
        }
        let tx = self.caller.tx;
        self.sip(super::SipCommand::Respond { tx, response: ok });
        self.state = State::Hosted;
        self.record.answer_after = Some(self.elapsed(now));
        self.out.push_back(Output::Notice(Notice::Answered));
    }

    /// The agent media leg of a dial is up: send the INVITE.
    pub(super) fn hosted_agent_media_ready(&mut self, now: Instant) {
        let Some(ring_timeout) = self.hosted.as_mut().and_then(|h| h.pending_dial.take()) else {
            // A dial cancelled while its leg was being made.
            return;
        };
        if self.state != State::Hosted {
            return;
        }
        self.send_agent_invite();
        self.ring_deadline = ring_timeout.map(|t| now + t);
    }

    /// Responses to the agent INVITE of a hosted call: nothing is relayed to the caller
    /// (they were answered already); the answer bridges, a failure goes back to the service.
    pub(super) fn on_hosted_agent_response(
        &mut self,
        now: Instant,
        invite: &Request,
        resp: Response,
    ) {
        match resp.code {
            100 => {}
            101..=199 => {
                if self.agent.dialog.is_none() && resp.to_tag().is_some() {
                    self.agent.dialog = Dialog::uac(invite, &resp).ok();
                }
                if self.state == State::Hosted && !self.agent.cancelled && !self.agent.finished {
                    if self.record.ring_after.is_none() {
                        self.record.ring_after = Some(self.elapsed(now));
                    }
                    if resp.code == 180 || resp.code == 183 {
                        self.out.push_back(Output::Notice(Notice::AgentRinging));
                    }
                }
            }
            200..=299 => {
                if !self.accept_agent_2xx(invite, &resp) {
                    return;
                }
                if self.state != State::Hosted || self.agent.cancelled {
                    // Answered as we cancelled (the 200 crossed our CANCEL) or after the
                    // caller left: the agent is hung up on.
                    self.send_bye(Side::Agent);
                    self.finish_if_done(now);
                    return;
                }
                self.ring_deadline = None;
                if !self.take_agent_answer(&resp) {
                    self.send_bye(Side::Agent);
                    self.agent_attempt_failed(EndCause::MediaError);
                    return;
                }
                self.stop_play();
                self.bridge();
                self.record.connect_after = Some(self.elapsed(now));
                tracing::info!(call = %self.key, "agent answered");
                self.out.push_back(Output::Notice(Notice::AgentAnswered));
            }
            code => {
                self.agent.finished = true;
                self.agent.dialog = None;
                let cancelled = self.agent.cancelled;
                if self.state == State::Hosted && !cancelled {
                    let (_, _, cause) = super::map_agent_failure(code);
                    self.agent_attempt_failed(cause);
                } else if self.state == State::Hosted {
                    // Our CANCEL's 487: the service heard of it when it cancelled.
                    self.release_agent_media();
                }
                self.finish_if_done(now);
            }
        }
    }

    /// A dial failed before answer: its media leg goes, the service hears why.
    pub(super) fn agent_attempt_failed(&mut self, cause: EndCause) {
        self.ring_deadline = None;
        if let Some(h) = self.hosted.as_mut() {
            h.pending_dial = None;
        }
        self.release_agent_media();
        self.out
            .push_back(Output::Notice(Notice::AgentFailed(cause)));
    }

    pub(super) fn release_agent_media(&mut self) {
        if std::mem::take(&mut self.agent.media_up) {
            self.drop_watchers("the monitored agent left the call");
            self.media(MediaOp::EndLeg {
                leg: self.agent.leg,
                side: Side::Agent,
            });
        }
    }
}

fn play_op(leg: LegId, h: &HostedState, i: usize) -> MediaOp {
    MediaOp::Play {
        leg,
        prompt: h.prompts[i].clone(),
        id: h.play_id,
        // A one-prompt loop is looped by the engine itself: no gap between rounds.
        looped: h.looped && h.prompts.len() == 1,
        interruptible: h.interruptible,
    }
}

/// The key in a SIP INFO (RFC 2976) body: `application/dtmf-relay` (`Signal=5`, as Cisco and
/// most phones send it) or `application/dtmf` (the bare key).
pub(super) fn info_digit(req: &Request) -> Option<char> {
    let ctype = req
        .headers
        .get(&HeaderName::ContentType)?
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let raw = if ctype.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ctype.starts_with("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = raw.chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        // Event numbers: 10 is '*', 11 is '#' (RFC 4733 §3.2 numbering).
        return match raw {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => None,
        };
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}
