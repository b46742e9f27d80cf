//! The sans-IO transaction layer: RFC 3261 §17 with RFC 6026's Accepted state.
//!
//! # Run loop
//!
//! The driver owns the sockets and the clock; [`TransactionLayer`] owns neither. After every
//! input (`handle_message`, `send_request`, `send_response`, `cancel`, `handle_timeout`) the
//! driver drains [`TransactionLayer::poll_transmit`] to the transport and
//! [`TransactionLayer::poll_event`] to the transaction user (TU), then arms one timer at
//! [`TransactionLayer::poll_timeout`] and calls `handle_timeout` when it fires.
//!
//! # Invariants
//!
//! * Every transaction the layer creates ends with exactly one [`TuEvent::Terminated`]; its
//!   [`TxId`] is never reused.
//! * Retransmissions are the layer's business: retransmitted requests and responses are
//!   absorbed (the TU sees each once), except 2xx responses to INVITE, which RFC 6026 §8.4
//!   passes up every time.
//! * Retransmission timers (A, E, G and the 2xx retransmission of §13.3.1.4) run over UDP only;
//!   over TCP the wait timers D, I, J and K are zero (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
//! * Nothing a peer sends can panic the layer: malformed or unmatched input is dropped or
//!   reported as a stray event.

mod client_invite;
mod client_non_invite;
mod layer;
mod server_invite;
mod server_non_invite;
mod timer;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

pub use layer::TransactionLayer;
pub use timer::{Timer, TimerConfig, TimerTable};

use super::grammar::Via;
use super::message::{HeaderName, Request, Response, SipHeaders, SipMessage};
use super::types::{Branch, Transport};

/// Where a message goes or came from: transport and socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl Peer {
    /// A peer reached over `transport` at `addr`.
    pub fn new(transport: Transport, addr: SocketAddr) -> Peer {
        Peer { transport, addr }
    }

    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer::new(Transport::Udp, addr)
    }

    /// A TCP peer (the connection is identified by its remote address).
    pub fn tcp(addr: SocketAddr) -> Peer {
        Peer::new(Transport::Tcp, addr)
    }

    fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

/// Opaque handle of a client or server transaction, unique for the layer's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

impl TxId {
    /// No transaction: what a call placed from a browser console has for its caller's
    /// INVITE (there is none). The layer never hands this id out, so anything sent to it
    /// is dropped.
    pub const DETACHED: TxId = TxId(u64::MAX);

    /// A made-up id for tests of code that keeps tables of transactions.
    #[doc(hidden)]
    pub fn for_test(n: u64) -> TxId {
        TxId(n)
    }
}

impl std::fmt::Display for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// A message to hand to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub message: SipMessage,
}

/// What the transaction layer tells its user (the UA core or B2BUA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TuEvent {
    /// A new request created a server transaction (not ACK, not CANCEL matched to an INVITE).
    /// Its top Via already carries `received`/`rport` (§18.2.1, RFC 3581 §4).
    Request {
        tx: TxId,
        request: Request,
        source: Peer,
    },
    /// CANCEL matching a pending INVITE server transaction (§9.2). The layer has NOT answered
    /// it; the TU answers the CANCEL (`cancel_tx`) with 200 and the INVITE (`invite_tx`) with
    /// 487. A CANCEL for an INVITE already answered is answered 200 by the layer, and one that
    /// matches nothing is answered 481 by the layer (§9.2); neither reaches the TU.
    Cancel {
        invite_tx: TxId,
        cancel_tx: TxId,
        request: Request,
        source: Peer,
    },
    /// An ACK for a 2xx (matched to an Accepted INVITE server transaction by Call-ID, CSeq
    /// number and tags; repeats of it are absorbed) or a stray ACK with no transaction
    /// (dialog-level: the TU decides). ACKs for non-2xx finals never reach the TU (§17.2.1).
    Ack {
        tx: Option<TxId>,
        request: Request,
        source: Peer,
    },
    /// A response for a client transaction (retransmissions absorbed, except 2xx to INVITE
    /// which are all passed up per §17.1.1.2 / RFC 6026 Accepted state).
    Response { tx: TxId, response: Response },
    /// A response that matched no client transaction (e.g. stray 2xx retransmission).
    StrayResponse { response: Response, source: Peer },
    /// Timer B/F fired, or Timer H expired without ACK for a non-2xx final: for a client tx
    /// the TU must treat it as a 408 (§8.1.3.1).
    Timeout { tx: TxId },
    /// The server INVITE tx sent a 2xx and no ACK arrived before Timer L (64*T1): the TU
    /// should end the dialog (send BYE, §13.3.1.4).
    AckTimeout { tx: TxId },
    /// A transaction has terminated and its id will never be seen again.
    Terminated { tx: TxId },
}

/// Where a response to a request goes (§18.2.2, RFC 3581 §4): over a reliable transport back
/// on the connection it came from; otherwise to the source IP (the `received` address) and
/// to the source port when `rport` was asked for, else to the Via sent-by port (default 5060).
pub fn response_destination(request_top_via: &Via, source: Peer) -> Peer {
    if source.reliable() {
        return source;
    }
    let port = match request_top_via.rport() {
        Some(Some(p)) => p,
        Some(None) => source.addr.port(),
        None => request_top_via.port.unwrap_or(5060),
    };
    Peer::new(source.transport, SocketAddr::new(source.addr.ip(), port))
}

/// Collected outputs of the machines, drained by the layer's `poll_*`.
#[derive(Debug, Default)]
struct Outputs {
    transmits: VecDeque<Transmit>,
    events: VecDeque<TuEvent>,
}

impl Outputs {
    fn send_request(&mut self, peer: Peer, request: Request) {
        self.transmits.push_back(Transmit {
            peer,
            message: SipMessage::Request(request),
        });
    }

    fn send_response(&mut self, peer: Peer, response: Response) {
        self.transmits.push_back(Transmit {
            peer,
            message: SipMessage::Response(response),
        });
    }

    fn event(&mut self, event: TuEvent) {
        self.events.push_back(event);
    }
}

/// Rewrites the top Via value (the first element of the first Via field) in place.
/// Returns false when the message has no parseable Via.
fn edit_top_via(headers: &mut super::message::Headers, edit: impl FnOnce(&mut Via)) -> bool {
    let Some(field) = headers.get(&HeaderName::Via) else {
        return false;
    };
    let Ok(mut vias) = Via::parse_list(field) else {
        return false;
    };
    let Some(top) = vias.first_mut() else {
        return false;
    };
    edit(top);
    let value = vias
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    // Only the first Via field changes; the others keep their order behind it.
    headers.remove_first(&HeaderName::Via);
    headers.push_front(HeaderName::Via, value);
    true
}

/// §18.2.1 and RFC 3581 §4: note where a request really came from in its top Via, so the
/// response finds its way back through NATs.
fn stamp_received(request: &mut Request, source: Peer) {
    edit_top_via(&mut request.headers, |via| {
        let host = via.host.trim_start_matches('[').trim_end_matches(']');
        let same_ip = host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip == source.addr.ip());
        let wants_rport = via.rport().is_some();
        // RFC 3581 §4: with rport, `received` is added even when it equals sent-by.
        if !same_ip || wants_rport {
            via.params
                .set("received", Some(source.addr.ip().to_string()));
        }
        if via.rport() == Some(None) {
            via.params
                .set("rport", Some(source.addr.port().to_string()));
        }
    });
}

/// Gives a request's top Via a branch if the TU forgot one (§8.1.1.7).
fn ensure_branch(request: &mut Request) -> Option<Branch> {
    let via = request.top_via()?;
    if let Some(b) = via.branch() {
        return Some(Branch::new(b));
    }
    let branch = Branch::generate();
    edit_top_via(&mut request.headers, |via| {
        via.params.set("branch", Some(branch.to_string()))
    });
    Some(branch)
}

/// Identity of a provisional response for absorbing its retransmissions: code, To tag and
/// RSeq (RFC 3262 §4: a repeated RSeq is a retransmission).
type ProvisionalKey = (u16, Option<String>, Option<String>);

fn provisional_key(response: &Response) -> ProvisionalKey {
    (
        response.code,
        response.to_tag(),
        response
            .headers
            .get(&HeaderName::Other("RSeq".into()))
            .map(str::to_string),
    )
}
