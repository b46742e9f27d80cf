//! Transfers asked for by a phone with REFER (RFC 3515), in the call-control style of
//! RFC 5589: the server, not the transferee, carries the transfer out.
//!
//! - **Blind** (`Refer-To: <sip:120@server>`, from the agent's side): 202, a NOTIFY "100
//!   Trying", then the service driving the call routes the number ([`Notice::TransferRequested`]
//!   → [`Call::route`] → [`Notice::Routed`]). A number that goes nowhere gets a final NOTIFY
//!   with the refusal and the agent keeps the caller; otherwise the final NOTIFY says 200, the
//!   agent's leg is hung up and the caller goes on to the queue, agent, flow, voicemail box or
//!   external number. A relayed call becomes a hosted one for that.
//! - **Attended** (`Refer-To: <sip:1002@server?Replaces=...>`): the agent consulted a
//!   colleague on a second call and now joins the two. The Replaces dialog names that second
//!   call; the SIP task finds it ([`SipCommand::Join`]), it hangs up the transferor's leg and
//!   hands over its other party's media leg ([`Linked::JoinAccepted`]); this call hangs up
//!   the transferor too and bridges its remaining party with that leg. The two calls keep
//!   their own signalling and end together ([`Linked::PartnerEnded`]). Either call may
//!   receive the REFER (phones differ on which dialog they send it in).
//!
//! The transferor usually hangs up when the final NOTIFY says 200; we hang up on it at the
//! same moment, and its crossing BYE is answered 200 ([`Links::was_released`]).

use bytes::Bytes;
use media::engine::LegId;

use super::{
    Call, CallKey, EndCause, Linked, MediaOp, Notice, Output, ReqRef, Side, SipCommand, State,
};
use crate::sip::grammar::{NameAddr, Uri, unescape};
use crate::sip::message::{HeaderName, Request, SipHeaders};
use crate::sip::transaction::TxId;
use crate::sip::types::{CallId, Method, Tag};

/// What a Refer-To asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReferTarget {
    /// Send the other party to this number.
    Number(String),
    /// Join the other party with the far party of the dialog named by RFC 3891 Replaces.
    Replaces { call_id: CallId, tags: Vec<Tag> },
}

/// Reads a Refer-To value: a name-addr or addr-spec whose URI has a number (sip: user part or
/// tel:), and maybe a `Replaces` header (`?Replaces=callid%3Bto-tag%3Dx%3Bfrom-tag%3Dy`).
pub(super) fn parse_refer_to(value: &str) -> Result<ReferTarget, &'static str> {
    let addr = NameAddr::parse(value.trim()).map_err(|_| "malformed Refer-To")?;
    if let Some(headers) = addr.uri.as_sip().and_then(|u| u.headers.as_deref()) {
        for h in headers.split('&') {
            let (name, v) = h.split_once('=').unwrap_or((h, ""));
            if name.eq_ignore_ascii_case("replaces") {
                return parse_replaces(&unescape(v));
            }
        }
    }
    let number = match &addr.uri {
        Uri::Sip(u) => u.user_unescaped(),
        Uri::Other { scheme, rest } if scheme == "tel" => {
            Some(rest.split(';').next().unwrap_or_default().to_string())
        }
        Uri::Other { .. } => None,
    };
    match number {
        Some(n) if !n.is_empty() => Ok(ReferTarget::Number(n)),
        _ => Err("Refer-To names no number"),
    }
}

/// `callid;to-tag=x;from-tag=y` (RFC 3891 §6.1).
fn parse_replaces(v: &str) -> Result<ReferTarget, &'static str> {
    let mut parts = v.split(';');
    let call_id = parts.next().unwrap_or_default().trim();
    if call_id.is_empty() {
        return Err("Replaces without a Call-ID");
    }
    let mut tags = Vec::new();
    for p in parts {
        if let Some((k, t)) = p.split_once('=') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("to-tag") || k.eq_ignore_ascii_case("from-tag") {
                tags.push(Tag::new(t.trim()));
            }
        }
    }
    if tags.len() != 2 {
        return Err("Replaces needs a to-tag and a from-tag");
    }
    Ok(ReferTarget::Replaces {
        call_id: CallId::new(call_id),
        tags,
    })
}

/// A transfer under way: the transferor's side and the NOTIFY event id (the REFER's CSeq).
#[derive(Debug, Clone, Copy)]
struct Pending {
    side: Side,
    event_id: u32,
    attended: bool,
}

/// A call's transfers and joins.
#[derive(Debug, Default)]
pub(super) struct Links {
    pending: Option<Pending>,
    /// The call this one is joined with.
    partner: Option<CallKey>,
    /// Dialogs we hung up for a transfer, by (Call-ID, our tag).
    released: Vec<(CallId, Tag)>,
    /// Their BYEs, until answered.
    byes: Vec<ReqRef>,
    /// The side that stays once joined.
    kept: Option<Side>,
}

impl Links {
    /// True for a request in a dialog we hung up for a transfer.
    pub(super) fn was_released(&self, req: &Request) -> bool {
        let (Some(call_id), Some(tag)) = (req.call_id(), req.to_tag()) else {
            return false;
        };
        self.released
            .iter()
            .any(|(c, t)| *c == call_id && t.as_str() == tag)
    }

    /// A response to one of our transfer BYEs: true when it was one.
    pub(super) fn bye_answered(&mut self, req: ReqRef) -> bool {
        let before = self.byes.len();
        self.byes.retain(|r| *r != req);
        self.byes.len() != before
    }

    pub(super) fn byes_pending(&self) -> bool {
        !self.byes.is_empty()
    }
}

impl Call {
    /// True when both parties are connected: the only time a transfer makes sense.
    pub(super) fn both_connected(&self) -> bool {
        let agent_up =
            self.agent.bridged && (self.agent.dialog.is_some() || self.browser_connected());
        let caller_up = self.caller.dialog.is_some() || self.console_connected();
        match self.state {
            State::Talking => agent_up && caller_up,
            State::Hosted => agent_up && caller_up,
            _ => false,
        }
    }

    /// The call this one is joined with by an attended transfer.
    pub fn partner(&self) -> Option<CallKey> {
        self.links.partner
    }

    /// A REFER in one of the call's dialogs (`side`).
    pub(super) fn on_refer(&mut self, tx: TxId, req: &Request, side: Side) {
        let refuse = |call: &mut Call, code: u16, reason: &str| {
            let r = call.stamp(req.response(code, reason, None));
            call.sip(SipCommand::Respond { tx, response: r });
        };
        if !self.both_connected() || self.links.partner.is_some() {
            return refuse(self, 403, "Forbidden (no connected call to transfer)");
        }
        if self.links.pending.is_some() {
            return refuse(self, 491, "Request Pending (a transfer is under way)");
        }
        let values: Vec<&str> = req.headers.get_all(&HeaderName::ReferTo).collect();
        let target = match values.as_slice() {
            [one] => parse_refer_to(one),
            [] => Err("no Refer-To"),
            _ => Err("more than one Refer-To"),
        };
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                tracing::info!(call = %self.key, why, "REFER refused");
                return refuse(self, 400, &format!("Bad Request ({why})"));
            }
        };
        // A hosted call's caller is the customer: only the agent hands them on.
        if side == Side::Caller && self.hosted.is_some() {
            return refuse(self, 403, "Forbidden (only the agent's side can transfer)");
        }
        if side == Side::Caller && matches!(target, ReferTarget::Number(_)) {
            // The queue, flow and voicemail services serve the caller's leg: handing the
            // agent's party on to them is not something this server does.
            return refuse(
                self,
                403,
                "Forbidden (a blind transfer is made from the agent's side)",
            );
        }
        let event_id = req.cseq().map_or(0, |c| c.seq);
        let attended = matches!(target, ReferTarget::Replaces { .. });
        self.links.pending = Some(Pending {
            side,
            event_id,
            attended,
        });
        refuse(self, 202, "Accepted");
        self.notify_transfer(side, event_id, "100 Trying", false);
        match target {
            ReferTarget::Number(number) => {
                tracing::info!(call = %self.key, number, "blind transfer asked for");
                if self.hosted.is_none() {
                    // From here on the server drives the caller's leg.
                    self.hosted = Some(super::hosted::HostedState::default());
                    self.state = State::Hosted;
                }
                self.out
                    .push_back(Output::Notice(Notice::TransferRequested(number)));
            }
            ReferTarget::Replaces { call_id, tags } => {
                tracing::info!(call = %self.key, %call_id, "attended transfer asked for");
                self.sip(SipCommand::Join {
                    call_id,
                    tags,
                    keeps: other(side),
                });
            }
        }
    }

    /// A blind transfer asked for from the agent's browser console (what a REFER with a
    /// number is from a phone); its progress goes back to the console.
    pub(super) fn browser_transfer(&mut self, number: String) -> Result<(), &'static str> {
        if !self.both_connected() || self.links.partner.is_some() {
            return Err("403 Forbidden (no connected call to transfer)");
        }
        if self.links.pending.is_some() {
            return Err("491 Request Pending (a transfer is under way)");
        }
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '+') {
            return Err("400 Bad Request (not a number)");
        }
        self.links.pending = Some(Pending {
            side: Side::Agent,
            event_id: 0,
            attended: false,
        });
        self.notify_transfer(Side::Agent, 0, "100 Trying", false);
        if self.hosted.is_none() {
            self.hosted = Some(super::hosted::HostedState::default());
            self.state = State::Hosted;
        }
        self.out
            .push_back(Output::Notice(Notice::TransferRequested(number)));
        Ok(())
    }

    /// Asks the SIP task where `number` goes; [`Notice::Routed`] answers.
    pub fn route(&mut self, number: String) {
        self.sip(SipCommand::Route { number });
    }

    /// The service cannot take the caller to the number: the transferor hears why and keeps
    /// the caller.
    pub fn transfer_failed(&mut self, code: u16, reason: &str) {
        if let Some(p) = self.links.pending.take() {
            tracing::info!(call = %self.key, code, reason, "transfer failed");
            self.notify_transfer(p.side, p.event_id, &format!("{code} {reason}"), true);
        }
    }

    /// The service takes the caller on: the transferor hears that it worked and is hung up.
    pub fn transfer_completed(&mut self) {
        let Some(p) = self.links.pending.take() else {
            return;
        };
        self.notify_transfer(p.side, p.event_id, "200 OK", true);
        self.release_side(p.side);
    }

    /// Messages from a call this one is joining or joined with.
    pub(super) fn on_linked(&mut self, now: std::time::Instant, msg: Linked) {
        if self.on_monitor_linked(now, &msg) {
            return;
        }
        match msg {
            Linked::JoinRequest {
                partner,
                call_id,
                partner_keeps,
            } => self.join_requested(partner, call_id, partner_keeps),
            Linked::TakeLeg { leg } => {
                if let (Some(_), Some(kept)) = (self.links.partner, self.links.kept)
                    && !matches!(self.state, State::Ending | State::Ended)
                {
                    let ours = self.leg_of(kept);
                    self.media(MediaOp::Link { ours, theirs: leg });
                }
            }
            Linked::JoinAccepted { partner, leg } => {
                let pending = self.links.pending.take();
                let Some(p) = pending.filter(|p| p.attended) else {
                    // We no longer wait for it (the call is ending): the other call ends too.
                    self.links.pending = pending;
                    self.sip(SipCommand::Tell {
                        to: partner,
                        msg: Linked::PartnerEnded {
                            cause: EndCause::Failed,
                        },
                    });
                    return;
                };
                if matches!(self.state, State::Ending | State::Ended) {
                    self.sip(SipCommand::Tell {
                        to: partner,
                        msg: Linked::PartnerEnded {
                            cause: self.record.end_cause.unwrap_or(EndCause::Failed),
                        },
                    });
                    return;
                }
                self.notify_transfer(p.side, p.event_id, "200 OK", true);
                self.release_side(p.side);
                self.links.partner = Some(partner);
                self.record.services.push(format!("joined:{partner}"));
                let kept = other(p.side);
                self.links.kept = Some(kept);
                let ours = self.leg_of(kept);
                if kept == Side::Caller {
                    // Hold music while the agent consulted: the caller hears the colleague now.
                    self.stop_play();
                }
                match leg {
                    Some(theirs) => self.media(MediaOp::Link { ours, theirs }),
                    None => {
                        // The other call keeps the customer: our party goes to its room.
                        self.media(MediaOp::Leave { leg: ours });
                        self.sip(SipCommand::Tell {
                            to: partner,
                            msg: Linked::TakeLeg { leg: ours },
                        });
                    }
                }
                tracing::info!(call = %self.key, %partner, "attended transfer: calls joined");
                self.out
                    .push_back(Output::Notice(Notice::Joined { dropped: p.side }));
            }
            Linked::JoinRefused { code, reason } => {
                if let Some(p) = self.links.pending.take_if(|p| p.attended) {
                    tracing::info!(call = %self.key, code, reason, "attended transfer refused");
                    self.notify_transfer(p.side, p.event_id, &format!("{code} {reason}"), true);
                }
            }
            Linked::PartnerEnded { cause } => {
                if self.links.partner.take().is_some() {
                    self.end(now, cause, None);
                }
            }
            // Handled by `on_monitor_linked` above.
            Linked::MonitorRequest { .. }
            | Linked::MonitorStarted
            | Linked::MonitorMode { .. }
            | Linked::MonitorEnded { .. }
            | Linked::MonitorOver { .. } => {}
        }
    }

    /// Another call's transferor names our dialog `call_id` (theirs with us) in Replaces:
    /// we hang up on them, and the two remaining parties meet in one room: ours when we keep
    /// the customer (the caller) and they do not, so the customer's recording goes on; else
    /// theirs, and our party's leg is handed over.
    fn join_requested(&mut self, partner: CallKey, call_id: CallId, partner_keeps: Side) {
        let side = if self.caller.invite.call_id().as_ref() == Some(&call_id) {
            Side::Caller
        } else {
            Side::Agent
        };
        let refusal = if !self.both_connected() {
            Some((486, "Busy Here (the consulted call is not connected)"))
        } else if self.links.partner.is_some() || self.links.pending.is_some() {
            Some((
                491,
                "Request Pending (the consulted call is being transferred)",
            ))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            self.sip(SipCommand::Tell {
                to: partner,
                msg: Linked::JoinRefused { code, reason },
            });
            return;
        }
        self.links.kept = Some(other(side));
        let kept = self.leg_of(other(side));
        if other(side) == Side::Caller {
            self.stop_play();
        }
        self.release_side(side);
        self.links.partner = Some(partner);
        self.record.services.push(format!("joined:{partner}"));
        let host_here = other(side) == Side::Caller && partner_keeps == Side::Agent;
        let leg = if host_here {
            None
        } else {
            self.media(MediaOp::Leave { leg: kept });
            Some(kept)
        };
        self.sip(SipCommand::Tell {
            to: partner,
            msg: Linked::JoinAccepted {
                partner: self.key,
                leg,
            },
        });
        tracing::info!(call = %self.key, %partner, "joined by an attended transfer");
        if self.hosted.is_some() {
            self.out
                .push_back(Output::Notice(Notice::Joined { dropped: side }));
        }
    }

    /// The call is ending: a pending transfer is told so, a joined call ends too.
    pub(super) fn end_links(&mut self, cause: EndCause) {
        if let Some(p) = self.links.pending.take() {
            self.notify_transfer(p.side, p.event_id, "487 Request Terminated", true);
        }
        if let Some(partner) = self.links.partner.take() {
            self.sip(SipCommand::Tell {
                to: partner,
                msg: Linked::PartnerEnded { cause },
            });
        }
    }

    fn leg_of(&self, side: Side) -> LegId {
        match side {
            Side::Caller => self.caller.leg,
            Side::Agent => self.agent.leg,
        }
    }

    /// Hangs up one side for a transfer; the call goes on with the other.
    fn release_side(&mut self, side: Side) {
        self.drop_watchers("the monitored agent transferred the call");
        let dialog = match side {
            Side::Caller => self.caller.dialog.as_ref(),
            Side::Agent => self.agent.dialog.as_ref(),
        };
        if let Some(d) = dialog {
            self.links
                .released
                .push((d.id().call_id.clone(), d.id().local_tag.clone()));
        }
        self.send_bye(side);
        // The BYE is the transfer's, not the call's: the call goes on without waiting.
        let bye = match side {
            Side::Caller => self.caller.bye.take(),
            Side::Agent => self.agent.bye.take(),
        };
        self.links.byes.extend(bye);
        match side {
            Side::Caller => {
                // Nobody to refresh the session with, or to hear from.
                self.session = None;
                self.media(MediaOp::EndLeg {
                    leg: self.caller.leg,
                    side: Side::Caller,
                });
            }
            Side::Agent => {
                self.agent.bridged = false;
                self.agent.answered = false;
                self.release_agent_media();
                self.sip(SipCommand::AgentLeft);
            }
        }
    }

    /// NOTIFY of the transfer's progress to the transferor (RFC 3515 §2.4.4), its body the
    /// status line as a sipfrag; `done` ends the implicit subscription.
    fn notify_transfer(&mut self, side: Side, event_id: u32, status: &str, done: bool) {
        if side == Side::Agent && self.agent.browser.is_some() {
            self.softphone_event(super::browser::SoftphoneEventKind::Transfer {
                status: status.to_string(),
                done,
            });
            return;
        }
        let (via, dest) = match side {
            Side::Caller => (self.caller_via(), self.caller.source),
            Side::Agent => (self.agent_via(), self.agent.dest),
        };
        let dialog = match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.dialog.as_mut(),
        };
        let Some(dialog) = dialog else {
            return;
        };
        let mut notify = dialog.create_request(Method::Notify, &via);
        notify
            .headers
            .push(HeaderName::Event, format!("refer;id={event_id}"));
        notify.headers.push(
            HeaderName::Other("Subscription-State".into()),
            if done {
                "terminated;reason=noresource".to_string()
            } else {
                "active;expires=60".to_string()
            },
        );
        notify
            .headers
            .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
        notify
            .headers
            .push(HeaderName::UserAgent, self.config.user_agent.clone());
        notify.body = Bytes::from(format!("SIP/2.0 {status}\r\n"));
        let req = self.next_req();
        self.sip(SipCommand::Send {
            req,
            request: notify,
            dest,
        });
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Caller => Side::Agent,
        Side::Agent => Side::Caller,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_a_number_in_every_common_form() {
        for v in [
            "<sip:120@127.0.0.1>",
            "sip:120@127.0.0.1:5060",
            "\"Service\" <sip:120@cti.local;user=phone>",
            "<tel:120>",
        ] {
            assert_eq!(
                parse_refer_to(v),
                Ok(ReferTarget::Number("120".into())),
                "{v}"
            );
        }
        assert_eq!(
            parse_refer_to("<sip:%2B4930123456@x>"),
            Ok(ReferTarget::Number("+4930123456".into()))
        );
    }

    #[test]
    fn refer_to_with_replaces_names_the_dialog() {
        let t = parse_refer_to(
            "<sip:1002@127.0.0.1?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>",
        )
        .unwrap();
        assert_eq!(
            t,
            ReferTarget::Replaces {
                call_id: CallId::new("abc@host"),
                tags: vec![Tag::new("t1"), Tag::new("f1")],
            }
        );
    }

    #[test]
    fn bad_refer_to_values_are_errors() {
        for v in [
            "",
            "<sip:@127.0.0.1>",
            "<sip:127.0.0.1>",
            "<mailto:a@b>",
            "<sip:1002@h?Replaces=%3Bto-tag%3Da%3Bfrom-tag%3Db>",
            "<sip:1002@h?Replaces=cid%3Bto-tag%3Da>",
            "not a uri",
        ] {
            assert!(parse_refer_to(v).is_err(), "{v}");
        }
    }
}
