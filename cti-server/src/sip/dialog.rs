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

    pub fn id(&self) -> &DialogId {
        &self.id
    }

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

    pub fn local_uri(&self) -> &NameAddr {
        &self.local_uri
    }

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

    pub fn secure(&self) -> bool {
        self.secure
    }

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
