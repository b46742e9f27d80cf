//! [`TransactionLayer`]: matching (§17.1.3, §17.2.3), the four machines, and one deadline heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::client_invite::{self, ClientInvite};
use super::client_non_invite::ClientNonInvite;
use super::server_invite::{AckOutcome, ServerInvite};
use super::server_non_invite::ServerNonInvite;
use super::{
    Outputs, Peer, Timer, TimerConfig, TimerTable, Transmit, TuEvent, TxId, ensure_branch,
    response_destination, stamp_received,
};
use crate::sip::dialog::create_cancel;
use crate::sip::grammar::Via;
use crate::sip::message::{Request, Response, SipHeaders, SipMessage};
use crate::sip::types::{Branch, CallId, Method};

/// The transaction layer of one SIP endpoint: every client and server transaction, matched
/// by the rules of §17.1.3 and §17.2.3, driven by messages and by time passed in.
///
/// See the [module docs](super) for the run loop.
#[derive(Debug)]
pub struct TransactionLayer {
    config: TimerConfig,
    next_id: u64,
    txs: HashMap<TxId, Entry>,
    index: HashMap<Key, TxId>,
    /// (deadline, tx) with lazy deletion: an entry is live only while it equals the
    /// transaction's `scheduled` deadline; stale tops are pruned after every input.
    heap: BinaryHeap<Reverse<(Instant, TxId)>>,
    out: Outputs,
}

impl TransactionLayer {
    /// An empty layer using `config`'s T1, T2 and T4.
    pub fn new(config: TimerConfig) -> Self {
        TransactionLayer {
            config,
            next_id: 1,
            txs: HashMap::new(),
            index: HashMap::new(),
            heap: BinaryHeap::new(),
            out: Outputs::default(),
        }
    }

    /// The timer values in use.
    pub fn config(&self) -> &TimerConfig {
        &self.config
    }

    /// Feed a message received from the transport (already parsed). Matching per §17.1.3 /
    /// §17.2.3 (RFC 3261 branch with magic cookie; RFC 2543 fallback matching for branches
    /// without the cookie). Retransmitted requests are absorbed (the last response is re-sent
    /// for them). A request's top Via gets `received`/`rport` before the TU sees it.
    pub fn handle_message(&mut self, now: Instant, message: SipMessage, source: Peer) {
        match message {
            SipMessage::Response(r) => self.handle_response(now, r, source),
            SipMessage::Request(r) => self.handle_request(now, r, source),
        }
        self.prune();
    }

    /// Start a client transaction for `request` (its top Via should carry a branch; one is
    /// added if it does not). An INVITE is kept to build the ACK for a non-2xx (§17.1.1.3)
    /// and the CANCEL (§9.1). An ACK has no transaction: it is sent as is and its id
    /// terminates at once (use [`send_stateless`](Self::send_stateless) instead).
    pub fn send_request(&mut self, now: Instant, mut request: Request, dest: Peer) -> TxId {
        let id = self.alloc_id();
        let branch = ensure_branch(&mut request);
        if request.method == Method::Ack || branch.is_none() {
            tracing::debug!(%id, method = %request.method, "request sent without a transaction");
            self.out.send_request(dest, request);
            self.out.event(TuEvent::Terminated { tx: id });
            return id;
        }
        let key = Key::Client {
            branch: branch.unwrap_or_else(Branch::generate),
            method: request.method.clone(),
        };
        let machine = if request.method == Method::Invite {
            Machine::ClientInvite(ClientInvite::start(
                id,
                request,
                dest,
                now,
                &self.config,
                &mut self.out,
            ))
        } else {
            Machine::ClientNonInvite(ClientNonInvite::start(
                id,
                request,
                dest,
                now,
                &self.config,
                &mut self.out,
            ))
        };
        self.insert(id, machine, vec![key]);
        self.prune();
        id
    }

    /// Send a response on a server transaction (provisional or final). For a 2xx to INVITE
    /// the transaction enters Accepted (RFC 6026) and retransmits the 2xx at T1, 2T1, ...
    /// capped at T2 over UDP until the matching ACK arrives or Timer L fires (§13.3.1.4).
    /// A response the transaction's state does not allow (or for an unknown id) is dropped.
    pub fn send_response(&mut self, now: Instant, tx: TxId, response: Response) {
        let Some(entry) = self.txs.get_mut(&tx) else {
            tracing::debug!(%tx, code = response.code, "response for no transaction dropped");
            return;
        };
        let ack_key = (response.code / 100 == 2).then(|| ack_key_of_response(&response));
        let sent = match &mut entry.machine {
            Machine::ServerInvite(m) => m.send_response(now, &self.config, response, &mut self.out),
            Machine::ServerNonInvite(m) => {
                m.send_response(now, &self.config, response, &mut self.out)
            }
            _ => false,
        };
        if !sent {
            tracing::debug!(%tx, "response not allowed in the transaction's state: dropped");
        }
        if let (true, Machine::ServerInvite(_), Some(Some(key))) = (sent, &entry.machine, ack_key)
            && !entry.keys.contains(&key)
        {
            entry.keys.push(key.clone());
            self.index.insert(key, tx);
        }
        self.settle(tx);
        self.prune();
    }

    /// Build and send a CANCEL for a pending client INVITE (§9.1), only after a provisional
    /// response was received (if none yet, it is remembered and sent with the first 1xx; if
    /// a final comes first it is never sent and its id just terminates). Returns the CANCEL's
    /// client TxId, or `None` when the INVITE is not pending.
    pub fn cancel(&mut self, now: Instant, invite_tx: TxId) -> Option<TxId> {
        let Some(Entry {
            machine: Machine::ClientInvite(ci),
            ..
        }) = self.txs.get_mut(&invite_tx)
        else {
            return None;
        };
        if let Some(existing) = ci.cancel.or(ci.pending_cancel) {
            return Some(existing);
        }
        match ci.state {
            client_invite::State::Calling => {
                let id = TxId(self.next_id);
                self.next_id += 1;
                ci.pending_cancel = Some(id);
                Some(id)
            }
            client_invite::State::Proceeding => {
                let id = TxId(self.next_id);
                self.next_id += 1;
                ci.cancel = Some(id);
                let (cancel, dest) = (create_cancel(&ci.request), ci.dest);
                self.start_cancel(now, id, cancel, dest);
                self.prune();
                Some(id)
            }
            _ => None,
        }
    }

    /// Send a message with no transaction (ACK for 2xx, stateless responses).
    pub fn send_stateless(&mut self, message: SipMessage, dest: Peer) {
        self.out.transmits.push_back(Transmit {
            peer: dest,
            message,
        });
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(entry) = self.txs.get_mut(&id)
                && entry.scheduled == Some(at)
            {
                entry.scheduled = None;
                due.push(id);
            }
        }
        for id in due {
            // Bounded so that a zero T1 cannot spin: each pass fires each timer once.
            for _ in 0..Timer::ALL.len() {
                let Some(entry) = self.txs.get_mut(&id) else {
                    break;
                };
                let Some(timer) = entry.machine.timers_mut().pop_expired(now) else {
                    break;
                };
                let cfg = &self.config;
                let out = &mut self.out;
                match &mut entry.machine {
                    Machine::ClientInvite(m) => m.on_timer(now, cfg, timer, out),
                    Machine::ClientNonInvite(m) => m.on_timer(now, cfg, timer, out),
                    Machine::ServerInvite(m) => m.on_timer(now, cfg, timer, out),
                    Machine::ServerNonInvite(m) => m.on_timer(timer),
                }
            }
            self.settle(id);
        }
        self.prune();
    }

    /// The next message for the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TuEvent> {
        self.out.events.pop_front()
    }

    /// Earliest deadline across all transactions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// True when `request` belongs to a live server transaction (a retransmission the
    /// layer absorbs by re-sending its last response).
    pub fn is_retransmission(&self, request: &Request) -> bool {
        let Some(via) = request.top_via() else {
            return false;
        };
        server_key(request, &via, request.method.clone())
            .and_then(|k| self.lookup(&k, request))
            .is_some()
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn handle_response(&mut self, now: Instant, response: Response, source: Peer) {
        // §17.1.3: the top Via branch and the CSeq method select the client transaction.
        let key = match (response.top_via(), response.cseq()) {
            (Some(via), Some(cseq)) => via.branch().map(|b| Key::Client {
                branch: Branch::new(b),
                method: cseq.method,
            }),
            _ => None,
        };
        let Some(id) = key.and_then(|k| self.index.get(&k).copied()) else {
            self.out.event(TuEvent::StrayResponse { response, source });
            return;
        };
        let Some(entry) = self.txs.get_mut(&id) else {
            return;
        };
        let mut send_cancel = None;
        match &mut entry.machine {
            Machine::ClientInvite(m) => {
                m.on_response(now, &self.config, response, &mut self.out);
                match (m.state, m.pending_cancel.take()) {
                    // §9.1: the CANCEL waited for this first provisional.
                    (client_invite::State::Proceeding, Some(c)) => {
                        m.cancel = Some(c);
                        send_cancel = Some((c, create_cancel(&m.request), m.dest));
                    }
                    (client_invite::State::Calling, pending) => m.pending_cancel = pending,
                    // A final came first: the CANCEL is moot and never sent.
                    (_, Some(c)) => self.out.event(TuEvent::Terminated { tx: c }),
                    (_, None) => {}
                }
            }
            Machine::ClientNonInvite(m) => {
                m.on_response(now, &self.config, response, &mut self.out)
            }
            _ => {}
        }
        self.settle(id);
        if let Some((c, cancel, dest)) = send_cancel {
            self.start_cancel(now, c, cancel, dest);
        }
    }

    fn start_cancel(&mut self, now: Instant, id: TxId, cancel: Request, dest: Peer) {
        let branch = cancel
            .top_via()
            .and_then(|v| v.branch().map(Branch::new))
            .unwrap_or_else(Branch::generate);
        let m = ClientNonInvite::start(id, cancel, dest, now, &self.config, &mut self.out);
        let key = Key::Client {
            branch,
            method: Method::Cancel,
        };
        self.insert(id, Machine::ClientNonInvite(m), vec![key]);
    }

    fn handle_request(&mut self, now: Instant, mut request: Request, source: Peer) {
        let Some(via) = request.top_via() else {
            tracing::debug!("request without a Via dropped");
            return;
        };
        let key = |method: Method| server_key(&request, &via, method);
        let own_key = key(match request.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        });
        let invite_key = key(Method::Invite);
        stamp_received(&mut request, source);
        let dest = request
            .top_via()
            .map_or(source, |v| response_destination(&v, source));

        match request.method {
            Method::Ack => self.handle_ack(now, request, source, own_key),
            Method::Cancel => {
                if let Some(id) = own_key.as_ref().and_then(|k| self.lookup(k, &request)) {
                    self.retransmission(id);
                    return;
                }
                let invite = invite_key.as_ref().and_then(|k| self.index.get(k).copied());
                let cancel_tx = self.alloc_id();
                let m = ServerNonInvite::new(cancel_tx, request.clone(), dest);
                self.insert(
                    cancel_tx,
                    Machine::ServerNonInvite(m),
                    own_key.into_iter().collect(),
                );
                let invite_state = invite.and_then(|i| match self.txs.get(&i) {
                    Some(Entry {
                        machine: Machine::ServerInvite(si),
                        ..
                    }) => Some((i, si.is_pending(), si.final_response.clone())),
                    _ => None,
                });
                match invite_state {
                    Some((invite_tx, true, _)) => self.out.event(TuEvent::Cancel {
                        invite_tx,
                        cancel_tx,
                        request,
                        source,
                    }),
                    // §9.2: already answered: the CANCEL has no effect but gets a 200 with
                    // the To tag of the final response.
                    Some((_, false, fin)) => {
                        let tag = fin.and_then(|f| f.to_tag());
                        let ok = request.response(200, "OK", tag.as_deref());
                        self.send_response(now, cancel_tx, ok);
                    }
                    // §9.2: no transaction to cancel.
                    None => {
                        let r = request.response(481, "Call/Transaction Does Not Exist", None);
                        self.send_response(now, cancel_tx, r);
                    }
                }
            }
            _ => {
                if let Some(id) = own_key.as_ref().and_then(|k| self.lookup(k, &request)) {
                    self.retransmission(id);
                    return;
                }
                let tx = self.alloc_id();
                let machine = if request.method == Method::Invite {
                    Machine::ServerInvite(ServerInvite::new(tx, request.clone(), dest, now))
                } else {
                    Machine::ServerNonInvite(ServerNonInvite::new(tx, request.clone(), dest))
                };
                self.insert(tx, machine, own_key.into_iter().collect());
                self.out.event(TuEvent::Request {
                    tx,
                    request,
                    source,
                });
            }
        }
    }

    /// §17.2.1 / RFC 6026 §8.7: an ACK confirms a non-2xx (absorbed) or acknowledges a 2xx
    /// (matched by dialog identifiers since it carries a new branch, passed to the TU once).
    fn handle_ack(&mut self, now: Instant, request: Request, source: Peer, key: Option<Key>) {
        let by_branch = key.as_ref().and_then(|k| self.lookup(k, &request));
        let id = by_branch
            .or_else(|| ack_key_of_request(&request).and_then(|k| self.index.get(&k).copied()));
        let outcome = id.and_then(|id| match self.txs.get_mut(&id) {
            Some(Entry {
                machine: Machine::ServerInvite(m),
                ..
            }) => Some((id, m.on_ack(now, &self.config))),
            _ => None,
        });
        match outcome {
            Some((id, AckOutcome::ForTu)) => {
                self.out.event(TuEvent::Ack {
                    tx: Some(id),
                    request,
                    source,
                });
                self.settle(id);
            }
            Some((id, AckOutcome::Absorbed)) => self.settle(id),
            None => self.out.event(TuEvent::Ack {
                tx: None,
                request,
                source,
            }),
        }
    }

    /// Looks a server key up; RFC 2543 matching also needs the To tag to agree (§17.2.3):
    /// the request's for a retransmission, the final response's for an ACK.
    fn lookup(&self, key: &Key, request: &Request) -> Option<TxId> {
        let id = *self.index.get(key)?;
        if !matches!(key, Key::Legacy { .. }) {
            return Some(id);
        }
        let entry = self.txs.get(&id)?;
        let to_tag = request.to_tag();
        let expected = match &entry.machine {
            Machine::ServerInvite(m) if request.method == Method::Ack => m
                .final_response
                .as_ref()
                .and_then(|r| r.to_tag())
                .or_else(|| m.request.to_tag()),
            Machine::ServerInvite(m) => m.request.to_tag(),
            Machine::ServerNonInvite(m) => m.request.to_tag(),
            _ => return Some(id),
        };
        (to_tag == expected).then_some(id)
    }

    fn retransmission(&mut self, id: TxId) {
        match self.txs.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::ServerInvite(m)) => m.on_retransmission(&mut self.out),
            Some(Machine::ServerNonInvite(m)) => m.on_retransmission(&mut self.out),
            _ => {}
        }
    }

    fn insert(&mut self, id: TxId, machine: Machine, keys: Vec<Key>) {
        for k in &keys {
            self.index.insert(k.clone(), id);
        }
        self.txs.insert(
            id,
            Entry {
                machine,
                keys,
                scheduled: None,
            },
        );
        self.settle(id);
    }

    /// After any input to `id`: remove it if terminated, else keep the heap in step with
    /// its next deadline.
    fn settle(&mut self, id: TxId) {
        let Some(entry) = self.txs.get_mut(&id) else {
            return;
        };
        if entry.machine.is_terminated() {
            let Some(entry) = self.txs.remove(&id) else {
                return;
            };
            for k in entry.keys {
                if self.index.get(&k) == Some(&id) {
                    self.index.remove(&k);
                }
            }
            if let Machine::ClientInvite(ci) = &entry.machine
                && let Some(c) = ci.pending_cancel
            {
                self.out.event(TuEvent::Terminated { tx: c });
            }
            self.out.event(TuEvent::Terminated { tx: id });
            return;
        }
        let next = entry.machine.timers_mut().next();
        if next != entry.scheduled {
            entry.scheduled = next;
            if let Some(at) = next {
                self.heap.push(Reverse((at, id)));
            }
        }
    }

    /// Drops stale heap tops so `poll_timeout` is exact.
    fn prune(&mut self) {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            match self.txs.get(&id) {
                Some(e) if e.scheduled == Some(at) => break,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    /// Index keys to remove when the transaction ends.
    keys: Vec<Key>,
    /// The deadline currently pushed on the heap for this transaction.
    scheduled: Option<Instant>,
}

#[derive(Debug)]
#[allow(clippy::enum_variant_names)] // the RFC's own names for the four machines
enum Machine {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

impl Machine {
    fn timers_mut(&mut self) -> &mut TimerTable {
        match self {
            Machine::ClientInvite(m) => &mut m.timers,
            Machine::ClientNonInvite(m) => &mut m.timers,
            Machine::ServerInvite(m) => &mut m.timers,
            Machine::ServerNonInvite(m) => &mut m.timers,
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Machine::ClientInvite(m) => m.is_terminated(),
            Machine::ClientNonInvite(m) => m.is_terminated(),
            Machine::ServerInvite(m) => m.is_terminated(),
            Machine::ServerNonInvite(m) => m.is_terminated(),
        }
    }
}

/// How a message finds its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// §17.1.3: the branch and the CSeq method (a CANCEL shares its INVITE's branch).
    Client { branch: Branch, method: Method },
    /// §17.2.3 with the magic cookie: branch, sent-by and method (ACK counts as INVITE).
    Server {
        branch: Branch,
        sent_by: String,
        method: Method,
    },
    /// §17.2.3 RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number and top Via
    /// (the To tag is compared after lookup).
    Legacy {
        uri: String,
        from_tag: Option<String>,
        call_id: CallId,
        seq: u32,
        via: String,
        method: Method,
    },
    /// An ACK for a 2xx carries a new branch: Call-ID, CSeq number and both tags.
    Ack2xx {
        call_id: CallId,
        seq: u32,
        from_tag: Option<String>,
        to_tag: Option<String>,
    },
}

fn server_key(request: &Request, via: &Via, method: Method) -> Option<Key> {
    match via.branch() {
        Some(b) if Branch::new(b).is_rfc3261() => Some(Key::Server {
            branch: Branch::new(b),
            sent_by: via.sent_by().to_ascii_lowercase(),
            method,
        }),
        _ => Some(Key::Legacy {
            uri: request.uri.to_string(),
            from_tag: request.from_tag(),
            call_id: request.call_id()?,
            seq: request.cseq()?.seq,
            via: via.to_string(),
            method,
        }),
    }
}

fn ack_key_of_request(ack: &Request) -> Option<Key> {
    Some(Key::Ack2xx {
        call_id: ack.call_id()?,
        seq: ack.cseq()?.seq,
        from_tag: ack.from_tag(),
        to_tag: ack.to_tag(),
    })
}

fn ack_key_of_response(response: &Response) -> Option<Key> {
    Some(Key::Ack2xx {
        call_id: response.call_id()?,
        seq: response.cseq()?.seq,
        from_tag: response.from_tag(),
        to_tag: response.to_tag(),
    })
}
