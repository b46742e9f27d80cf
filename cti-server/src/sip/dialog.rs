//! SIP dialogs (RFC 3261 §12): identity, state and the request-construction rules.
//!
//! A [`Dialog`] is plain data: the TU creates it from the dialog-creating request and response
//! ([`Dialog::uac`], [`Dialog::uas`]), feeds it every in-dialog request and response
//! ([`Dialog::handle_request`], [`Dialog::handle_response`]) and asks it for new requests
//! ([`Dialog::create_request`], [`Dialog::create_ack`]). It does no IO and keeps no clock;
//! transactions are the [`transaction`](super::transaction) layer's business.

use std::fmt;

use super::grammar::{NameAddr, Uri};
use super::message::{HeaderName, Headers, Request, Response, SipHeaders};
use super::types::{Branch, CallId, Method, Tag, Transport};

/// A dialog identifier (§12): Call-ID plus the local and remote tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    pub call_id: CallId,
    pub local_tag: Tag,
    pub remote_tag: Tag,
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};{};{}", self.call_id, self.local_tag, self.remote_tag)
    }
}

/// The identifier of the dialog a request belongs to (§12.2.2): seen from the UAS, the local
/// tag is the To tag and the remote tag the From tag; seen from the UAC, the reverse.
/// `None` without a Call-ID or a To tag (a request outside any dialog). A missing From tag
/// (RFC 2543 peers) counts as an empty tag.
pub fn dialog_id_of_request(request: &Request, is_uas: bool) -> Option<DialogId> {
    let call_id = request.call_id()?;
    let to = Tag::new(request.to_tag()?);
    let from = Tag::new(request.from_tag().unwrap_or_default());
    let (local_tag, remote_tag) = if is_uas { (to, from) } else { (from, to) };
    Some(DialogId {
        call_id,
        local_tag,
        remote_tag,
    })
}

/// The identifier of the dialog a response belongs to, seen from the UAC that sent the
/// request (local tag = From tag, remote tag = To tag, §12.1.2). `None` without a To tag.
pub fn dialog_id_of_response(response: &Response) -> Option<DialogId> {
    Some(DialogId {
        call_id: response.call_id()?,
        local_tag: Tag::new(response.from_tag()?),
        remote_tag: Tag::new(response.to_tag()?),
    })
}

/// The dialog states of §12 (an early dialog exists after a 1xx with a To tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// Why a dialog could not be created; all are the peer's fault (its message lacked something).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("missing or malformed {0} header")]
    MissingHeader(&'static str),
    #[error("no tag in the {0} header")]
    MissingTag(&'static str),
    #[error("no Contact in the dialog-creating {0}")]
    MissingContact(&'static str),
    #[error("a {0} response does not create a dialog")]
    NotDialogCreating(u16),
}

/// Our own Via sent-by for requests we originate: transport, host and port (§18.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVia {
    pub transport: Transport,
    pub host: String,
    pub port: Option<u16>,
    /// Ask for RFC 3581 symmetric response routing (`;rport`).
    pub rport: bool,
}

impl LocalVia {
    /// Our sent-by, asking for `rport`.
    pub fn new(transport: Transport, host: impl Into<String>, port: Option<u16>) -> LocalVia {
        LocalVia {
            transport,
            host: host.into(),
            port,
            rport: true,
        }
    }

    /// The Via value with a fresh branch (§8.1.1.7).
    pub fn to_value(&self, branch: &Branch) -> String {
        let mut v = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(p) = self.port {
            v.push_str(&format!(":{p}"));
        }
        if self.rport {
            v.push_str(";rport");
        }
        v.push_str(&format!(";branch={branch}"));
        v
    }
}

/// One dialog's state (§12.1): identifiers, sequence numbers, URIs, target and route set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    is_uas: bool,
    local_seq: Option<u32>,
    remote_seq: Option<u32>,
    /// Our address-of-record with our tag (From for the UAC, To for the UAS).
    local_uri: NameAddr,
    /// The peer's address-of-record with its tag.
    remote_uri: NameAddr,
    remote_target: Uri,
    /// Route set in the order requests carry it.
    route_set: Vec<NameAddr>,
    secure: bool,
    /// Our Contact, put in target refresh requests (§12.2.1.1).
    local_contact: Option<NameAddr>,
}

impl Dialog {
    /// The UAC's dialog from its request and a 101-199 response with a To tag (early) or a
    /// 2xx (confirmed) (§12.1.2): route set = Record-Route reversed, remote target = the
    /// response's Contact (a provisional without one keeps the Request-URI as target).
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let state = match response.code {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            code => return Err(DialogError::NotDialogCreating(code)),
        };
        let call_id = request
            .call_id()
            .ok_or(DialogError::MissingHeader("Call-ID"))?;
        let local_uri = request
            .from_header()
            .ok_or(DialogError::MissingHeader("From"))?;
        let local_tag = local_uri.tag().ok_or(DialogError::MissingTag("From"))?;
        let remote_uri = response
            .to_header()
            .ok_or(DialogError::MissingHeader("To"))?;
        let remote_tag = remote_uri.tag().ok_or(DialogError::MissingTag("To"))?;
        let remote_target = match first_contact(response) {
            Some(c) => c.uri,
            None if state == DialogState::Early => request.uri.clone(),
            None => return Err(DialogError::MissingContact("2xx response")),
        };
        let local_seq = request
            .cseq()
            .ok_or(DialogError::MissingHeader("CSeq"))?
            .seq;
        let mut route_set = record_route(response);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: Tag::new(local_tag),
                remote_tag: Tag::new(remote_tag),
            },
            state,
            is_uas: false,
            local_seq: Some(local_seq),
            remote_seq: None,
            secure: request.uri.scheme() == "sips",
            local_contact: first_contact(request),
            local_uri,
            remote_uri,
            remote_target,
            route_set,
        })
    }

    /// The UAS's dialog from the dialog-creating request and the tag it puts in its To
    /// (§12.1.1): route set = Record-Route as received, remote target = the request's
    /// Contact. It starts Early; call [`confirm`](Self::confirm) when the 2xx goes out.
    pub fn uas(request: &Request, local_tag: Tag) -> Result<Dialog, DialogError> {
        let call_id = request
            .call_id()
            .ok_or(DialogError::MissingHeader("Call-ID"))?;
        let remote_uri = request
            .from_header()
            .ok_or(DialogError::MissingHeader("From"))?;
        // §12.1.1: an RFC 2543 peer may send no From tag; the remote tag is then empty.
        let remote_tag = Tag::new(remote_uri.tag().unwrap_or_default());
        let mut local_uri = request
            .to_header()
            .ok_or(DialogError::MissingHeader("To"))?;
        local_uri
            .params
            .set("tag", Some(local_tag.as_str().to_string()));
        let remote_target = first_contact(request)
            .ok_or(DialogError::MissingContact("request"))?
            .uri;
        let remote_seq = request
            .cseq()
            .ok_or(DialogError::MissingHeader("CSeq"))?
            .seq;
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            state: DialogState::Early,
            is_uas: true,
            local_seq: None,
            remote_seq: Some(remote_seq),
            secure: request.uri.scheme() == "sips",
            local_contact: None,
            local_uri,
            remote_uri,
            remote_target,
            route_set: record_route(request),
        })
    }

    /// Call-ID and tags.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early, Confirmed or Terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// True for the dialog of the side that received the dialog-creating request.
    pub fn is_uas(&self) -> bool {
        self.is_uas
    }

    /// The CSeq number of the last request we sent in this dialog (`None`: none yet).
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }

    /// The CSeq number of the last request the peer sent (`None`: none yet).
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Our From (UAC) or To (UAS) value, with our tag.
    pub fn local_uri(&self) -> &NameAddr {
        &self.local_uri
    }

    /// The peer's address-of-record, with its tag.
    pub fn remote_uri(&self) -> &NameAddr {
        &self.remote_uri
    }

    /// Where in-dialog requests go (the peer's latest Contact).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// Route set in the order requests carry it.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// True when the dialog was created with a sips: Request-URI (§12.1.1).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Our Contact, if set.
    pub fn local_contact(&self) -> Option<&NameAddr> {
        self.local_contact.as_ref()
    }

    /// Sets our Contact, sent in target refresh requests (INVITE, UPDATE).
    pub fn set_local_contact(&mut self, contact: NameAddr) {
        self.local_contact = Some(contact);
    }

    /// The UAS sent its 2xx: the dialog is confirmed.
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// Ends the dialog (BYE sent or received, or a 481/408).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// A new in-dialog request (§12.2.1.1): Request-URI = remote target (or the first route
    /// when the next hop is a strict router), the route set as Route headers, our From/To
    /// with tags, CSeq one above the last (ACK and CANCEL reuse the current number),
    /// Max-Forwards 70 and a Via with a fresh branch.
    pub fn create_request(&mut self, method: Method, via: &LocalVia) -> Request {
        let seq = match method {
            Method::Ack | Method::Cancel => self.local_seq.unwrap_or(1),
            _ => {
                // §8.1.1.5 / §12.2.1.1: an empty local sequence starts anywhere below
                // 2^31; numbers never wrap past it.
                let next = self.local_seq.map_or(1, |s| (s + 1).min((1 << 31) - 1));
                self.local_seq = Some(next);
                next
            }
        };
        self.build(method, seq, via)
    }

    /// The ACK for a 2xx to the INVITE with CSeq number `invite_cseq` (§13.2.2.4): an
    /// in-dialog request of its own with a new branch and the INVITE's CSeq number.
    pub fn create_ack(&self, invite_cseq: u32, via: &LocalVia) -> Request {
        self.build(Method::Ack, invite_cseq, via)
    }

    /// Checks an in-dialog request from the peer (§12.2.2): a CSeq number lower than the
    /// last is out of order (`Err(500)`); a re-INVITE or UPDATE refreshes the remote target.
    /// `Err(481)` once the dialog is terminated, `Err(400)` without a CSeq.
    pub fn handle_request(&mut self, request: &Request) -> Result<(), u16> {
        if self.state == DialogState::Terminated {
            return Err(481);
        }
        let cseq = request.cseq().ok_or(400u16)?;
        if request.method != Method::Ack && request.method != Method::Cancel {
            if self.remote_seq.is_some_and(|last| cseq.seq < last) {
                return Err(500);
            }
            self.remote_seq = Some(cseq.seq);
        }
        // §12.2.2: target refresh requests replace the remote target.
        if is_target_refresh(&request.method)
            && let Some(c) = first_contact(request)
        {
            self.remote_target = c.uri;
        }
        Ok(())
    }

    /// Feeds a response to a request this side sent in (or to create) the dialog.
    pub fn handle_response(&mut self, response: &Response) {
        if self.state == DialogState::Terminated {
            return;
        }
        let Some(cseq) = response.cseq() else {
            return;
        };
        let code = response.code;
        // §12.2.1.2: a 481 or 408 to an in-dialog request ends the dialog.
        if code == 481 || code == 408 {
            self.terminate();
            return;
        }
        if cseq.method == Method::Invite && self.state == DialogState::Early {
            if (200..300).contains(&code) {
                self.state = DialogState::Confirmed;
                // §12.1.2 / §13.2.2.4: the confirmed dialog's route set comes from the 2xx.
                if !self.is_uas {
                    let mut rr = record_route(response);
                    rr.reverse();
                    self.route_set = rr;
                }
            } else if code >= 300 {
                // §12.3: a non-2xx final ends the early dialog.
                self.terminate();
                return;
            }
        }
        // §12.2.1.2: a 2xx to a target refresh replaces the remote target.
        if (200..300).contains(&code)
            && is_target_refresh(&cseq.method)
            && let Some(c) = first_contact(response)
        {
            self.remote_target = c.uri;
        }
    }

    fn build(&self, method: Method, seq: u32, via: &LocalVia) -> Request {
        // §12.2.1.1: a first route without `lr` is a strict router: it takes the
        // Request-URI and the remote target goes last in the Route set.
        let (uri, routes): (Uri, Vec<NameAddr>) = match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if is_loose(first) => (self.remote_target.clone(), self.route_set.clone()),
            Some(first) => {
                let mut routes = self.route_set[1..].to_vec();
                routes.push(NameAddr::new(self.remote_target.clone()));
                (first.uri.clone(), routes)
            }
        };
        let mut request = Request::new(method.clone(), uri);
        let h = &mut request.headers;
        h.push(HeaderName::Via, via.to_value(&Branch::generate()));
        h.push(HeaderName::MaxForwards, "70");
        for r in &routes {
            h.push(HeaderName::Route, r.to_string());
        }
        h.push(HeaderName::From, self.local_uri.to_string());
        h.push(HeaderName::To, self.remote_uri.to_string());
        h.push(HeaderName::CallId, self.id.call_id.as_str());
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        if is_target_refresh(&method)
            && let Some(c) = &self.local_contact
        {
            h.push(HeaderName::Contact, c.to_string());
        }
        request
    }
}

/// The CANCEL for `invite` (§9.1): same Request-URI, Call-ID, From, To and CSeq number, the
/// INVITE's top Via only (same branch, so it reaches the same server transaction), the
/// INVITE's Route headers, and method CANCEL.
pub fn create_cancel(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    let mut h = Headers::new();
    if let Some(via) = invite.top_via() {
        h.push(HeaderName::Via, via.to_string());
    }
    h.push(HeaderName::MaxForwards, "70");
    for r in invite.headers.get_all(&HeaderName::Route) {
        h.push(HeaderName::Route, r);
    }
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        if let Some(v) = invite.headers.get(&name) {
            h.push(name, v);
        }
    }
    let seq = invite.cseq().map_or(1, |c| c.seq);
    h.push(HeaderName::CSeq, format!("{seq} CANCEL"));
    cancel.headers = h;
    cancel
}

fn is_target_refresh(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update)
}

fn is_loose(route: &NameAddr) -> bool {
    route.uri.as_sip().is_some_and(|u| u.params.contains("lr"))
}

fn first_contact(message: &impl SipHeaders) -> Option<NameAddr> {
    message.contacts().into_iter().flatten().next()
}

/// Every Record-Route value, top first.
fn record_route(message: &impl SipHeaders) -> Vec<NameAddr> {
    message
        .headers()
        .get_all(&HeaderName::RecordRoute)
        .filter_map(|v| NameAddr::parse_list(v).ok())
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP older.example.com;branch=z9hG4bKolder\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> Request {
        match SipMessage::parse(INVITE.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    /// The UAS's response: To tag, Contact, and the Record-Route copied back (§12.1.1).
    fn response(code: u16, contact: &str) -> Response {
        let req = invite();
        let mut r = req.response(code, "Reason", Some("a6c85cf"));
        r.headers.push(HeaderName::Contact, contact);
        r.headers.push(
            HeaderName::RecordRoute,
            "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        );
        r
    }

    fn via() -> LocalVia {
        LocalVia::new(Transport::Udp, "pc33.atlanta.example.com", Some(5060))
    }

    fn route_hosts(d: &Dialog) -> Vec<String> {
        d.route_set()
            .iter()
            .map(|r| r.uri.as_sip().unwrap().host.clone())
            .collect()
    }

    #[test]
    fn uac_dialog_from_a_2xx_is_confirmed_with_reversed_record_route() {
        let d = Dialog::uac(&invite(), &response(200, "<sip:bob@192.0.2.4>")).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        assert!(!d.is_uas());
        assert_eq!(d.id().local_tag.as_str(), "1928301774");
        assert_eq!(d.id().remote_tag.as_str(), "a6c85cf");
        assert_eq!(
            d.id().call_id.as_str(),
            "a84b4c76e66710@pc33.atlanta.example.com"
        );
        assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.4");
        assert_eq!(route_hosts(&d), ["p1.example.com", "p2.example.com"]);
        assert_eq!(d.local_seq(), Some(314159));
        assert_eq!(d.remote_seq(), None);
        assert!(!d.secure());
        assert_eq!(
            dialog_id_of_response(&response(200, "<sip:x@y>")).as_ref(),
            Some(d.id())
        );
    }

    #[test]
    fn uac_early_dialog_is_confirmed_by_the_2xx_which_refreshes_target_and_routes() {
        let mut ringing = response(180, "<sip:bob@192.0.2.4>");
        ringing.headers.remove(&HeaderName::RecordRoute);
        let mut d = Dialog::uac(&invite(), &ringing).unwrap();
        assert_eq!(d.state(), DialogState::Early);
        assert!(d.route_set().is_empty());
        d.handle_response(&response(200, "<sip:bob@192.0.2.99>"));
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.99");
        assert_eq!(route_hosts(&d), ["p1.example.com", "p2.example.com"]);
    }

    #[test]
    fn uac_refuses_responses_that_create_no_dialog() {
        let req = invite();
        assert_eq!(
            Dialog::uac(&req, &req.response(100, "Trying", None)),
            Err(DialogError::NotDialogCreating(100))
        );
        assert_eq!(
            Dialog::uac(&req, &req.response(180, "Ringing", None)),
            Err(DialogError::MissingTag("To"))
        );
        assert_eq!(
            Dialog::uac(&req, &response(486, "<sip:b@h>")),
            Err(DialogError::NotDialogCreating(486))
        );
        let no_contact = req.response(200, "OK", Some("t"));
        assert_eq!(
            Dialog::uac(&req, &no_contact),
            Err(DialogError::MissingContact("2xx response"))
        );
    }

    #[test]
    fn early_dialog_ends_on_a_non_2xx_final_and_any_dialog_on_481() {
        let mut d = Dialog::uac(&invite(), &response(183, "<sip:b@h>")).unwrap();
        d.handle_response(&response(486, "<sip:b@h>"));
        assert_eq!(d.state(), DialogState::Terminated);
        let mut d = Dialog::uac(&invite(), &response(200, "<sip:b@h>")).unwrap();
        let bye = d.create_request(Method::Bye, &via());
        d.handle_response(&bye.response(481, "Call/Transaction Does Not Exist", None));
        assert_eq!(d.state(), DialogState::Terminated);
    }

    #[test]
    fn uas_dialog_keeps_record_route_order_and_targets_the_request_contact() {
        let req = invite();
        let mut d = Dialog::uas(&req, Tag::new("uas-tag")).unwrap();
        assert!(d.is_uas());
        assert_eq!(d.state(), DialogState::Early);
        d.confirm();
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(route_hosts(&d), ["p2.example.com", "p1.example.com"]);
        assert_eq!(
            d.remote_target().to_string(),
            "sip:alice@pc33.atlanta.example.com"
        );
        assert_eq!(d.remote_seq(), Some(314159));
        assert_eq!(d.local_seq(), None);
        assert_eq!(d.local_uri().tag(), Some("uas-tag"));
        assert_eq!(d.remote_uri().tag(), Some("1928301774"));
        assert_eq!(dialog_id_of_request(&req, true), None, "no To tag yet");
        let mut in_dialog = req.clone();
        in_dialog.headers.set(
            HeaderName::To,
            "Bob <sip:bob@biloxi.example.com>;tag=uas-tag",
        );
        assert_eq!(
            dialog_id_of_request(&in_dialog, true).as_ref(),
            Some(d.id())
        );
        let uac_view = dialog_id_of_request(&in_dialog, false).unwrap();
        assert_eq!(uac_view.local_tag.as_str(), "1928301774");

        let mut no_contact = req;
        no_contact.headers.remove(&HeaderName::Contact);
        assert_eq!(
            Dialog::uas(&no_contact, Tag::new("x")),
            Err(DialogError::MissingContact("request"))
        );
    }

    fn in_dialog(method: Method, seq: u32, contact: Option<&str>) -> Request {
        let mut r = Request::new(method.clone(), Uri::parse("sip:bob@192.0.2.4").unwrap());
        let src = invite();
        for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
            r.headers
                .push(name.clone(), src.headers.get(&name).unwrap());
        }
        r.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        if let Some(c) = contact {
            r.headers.push(HeaderName::Contact, c);
        }
        r
    }

    #[test]
    fn remote_cseq_must_not_go_backwards_500() {
        let mut d = Dialog::uas(&invite(), Tag::new("t")).unwrap();
        assert_eq!(
            d.handle_request(&in_dialog(Method::Ack, 314159, None)),
            Ok(())
        );
        assert_eq!(
            d.handle_request(&in_dialog(Method::Info, 314160, None)),
            Ok(())
        );
        assert_eq!(d.remote_seq(), Some(314160));
        assert_eq!(
            d.handle_request(&in_dialog(Method::Info, 314100, None)),
            Err(500)
        );
        assert_eq!(d.remote_seq(), Some(314160));
        d.terminate();
        assert_eq!(
            d.handle_request(&in_dialog(Method::Bye, 314161, None)),
            Err(481)
        );
    }

    #[test]
    fn reinvite_and_update_refresh_the_remote_target_other_methods_do_not() {
        let mut d = Dialog::uas(&invite(), Tag::new("t")).unwrap();
        let info = in_dialog(Method::Info, 314160, Some("<sip:alice@198.51.100.1>"));
        d.handle_request(&info).unwrap();
        assert_eq!(
            d.remote_target().to_string(),
            "sip:alice@pc33.atlanta.example.com"
        );
        let reinvite = in_dialog(Method::Invite, 314161, Some("<sip:alice@198.51.100.2>"));
        d.handle_request(&reinvite).unwrap();
        assert_eq!(d.remote_target().to_string(), "sip:alice@198.51.100.2");
        let update = in_dialog(Method::Update, 314162, Some("<sip:alice@198.51.100.3>"));
        d.handle_request(&update).unwrap();
        assert_eq!(d.remote_target().to_string(), "sip:alice@198.51.100.3");

        // UAC side: a 2xx to its re-INVITE refreshes too.
        let mut d = Dialog::uac(&invite(), &response(200, "<sip:bob@192.0.2.4>")).unwrap();
        let reinv = d.create_request(Method::Invite, &via());
        let mut ok = reinv.response(200, "OK", None);
        ok.headers.push(HeaderName::Contact, "<sip:bob@192.0.2.50>");
        d.handle_response(&ok);
        assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.50");
    }

    #[test]
    fn requests_follow_12_2_1_1() {
        let mut d = Dialog::uac(&invite(), &response(200, "<sip:bob@192.0.2.4>")).unwrap();
        d.set_local_contact(NameAddr::parse("<sip:alice@pc33.atlanta.example.com>").unwrap());
        let bye = d.create_request(Method::Bye, &via());
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.4");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(bye.cseq().unwrap().seq, 314160);
        assert_eq!(bye.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(bye.to_tag().as_deref(), Some("a6c85cf"));
        assert_eq!(bye.call_id(), Some(d.id().call_id.clone()));
        assert_eq!(bye.max_forwards(), Some(70));
        assert!(bye.headers.get(&HeaderName::Contact).is_none());
        let v = bye.top_via().unwrap();
        assert!(Branch::new(v.branch().unwrap()).is_rfc3261());
        assert_eq!(v.sent_by(), "pc33.atlanta.example.com:5060");
        assert_eq!(v.rport(), Some(None));

        let reinvite = d.create_request(Method::Invite, &via());
        assert_eq!(reinvite.cseq().unwrap().seq, 314161);
        assert_ne!(reinvite.top_via().unwrap().branch(), v.branch());
        assert_eq!(
            reinvite.headers.get(&HeaderName::Contact),
            Some("<sip:alice@pc33.atlanta.example.com>")
        );
        let ack = d.create_ack(314161, &via());
        assert_eq!(ack.headers.get(&HeaderName::CSeq), Some("314161 ACK"));
        assert_eq!(d.local_seq(), Some(314161), "ACK does not consume a number");
        // Printed and parsed back, the request is valid SIP.
        assert!(SipMessage::parse(&bye.to_bytes()).is_ok());
    }

    #[test]
    fn strict_router_takes_the_request_uri() {
        let mut resp = response(200, "<sip:bob@192.0.2.4>");
        resp.headers.set(
            HeaderName::RecordRoute,
            "<sip:p2.example.com;lr>, <sip:strict.example.com>",
        );
        let mut d = Dialog::uac(&invite(), &resp).unwrap();
        let bye = d.create_request(Method::Bye, &via());
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(routes, ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]);
    }

    #[test]
    fn cancel_copies_the_invite_per_9_1() {
        let inv = invite();
        let c = create_cancel(&inv);
        assert_eq!(c.method, Method::Cancel);
        assert_eq!(c.uri, inv.uri);
        assert_eq!(c.headers.get(&HeaderName::CSeq), Some("314159 CANCEL"));
        assert_eq!(c.vias(), vec![inv.top_via().unwrap()]);
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::Route,
        ] {
            assert_eq!(c.headers.get(&name), inv.headers.get(&name), "{name}");
        }
        assert!(SipMessage::parse(&c.to_bytes()).is_ok());
    }
}
