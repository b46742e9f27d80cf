//! Shared harness for the transaction-layer tests: message builders, a virtual clock that
//! steps one layer through its deadlines, and a two-endpoint [`Pair`] wired through a lossy,
//! delaying link (quinn-proto's `Pair::drive` style).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cti_server::sip::transaction::{Peer, TransactionLayer, Transmit, TuEvent, TxId};
use cti_server::sip::{Request, Response, SipMessage, Transport};

pub const CLIENT: &str = "10.0.0.1:5060";
pub const SERVER: &str = "10.0.0.2:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub fn peer(transport: Transport, s: &str) -> Peer {
    Peer {
        transport,
        addr: addr(s),
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A request from the client (sent-by = CLIENT) to the server.
pub fn request(method: &str, transport: Transport, branch: &str, seq: u32) -> Request {
    let text = format!(
        "{method} sip:agent@10.0.0.2 SIP/2.0\r\n\
Via: SIP/2.0/{transport} 10.0.0.1:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@10.0.0.1>;tag=fromtag\r\n\
To: <sip:agent@10.0.0.2>\r\n\
Call-ID: call-1@10.0.0.1\r\n\
CSeq: {seq} {method}\r\n\
Contact: <sip:alice@10.0.0.1:5060>\r\n\
Content-Length: 0\r\n\r\n"
    );
    parse_request(&text)
}

pub fn invite(transport: Transport) -> Request {
    request("INVITE", transport, "z9hG4bKinvite1", 1)
}

pub fn parse_request(text: &str) -> Request {
    match SipMessage::parse(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("test request does not parse: {other:?}"),
    }
}

/// A response as the UAS would build it (with a To tag for codes above 100).
pub fn answer(request: &Request, code: u16) -> Response {
    request.response(code, "Reason", Some("totag"))
}

/// The transmits of one layer driven alone: (offset from start, transmit).
pub type Log = Vec<(Duration, Transmit)>;

/// Steps `layer` from deadline to deadline until `end` (relative to `start`), recording
/// every transmit and event with its offset.
pub fn run_alone(
    layer: &mut TransactionLayer,
    start: Instant,
    end: Duration,
) -> (Log, Vec<(Duration, TuEvent)>) {
    let (mut log, mut events) = (Vec::new(), Vec::new());
    drain(layer, start, start, &mut log, &mut events);
    while let Some(at) = layer.poll_timeout() {
        if at > start + end {
            break;
        }
        layer.handle_timeout(at);
        drain(layer, start, at, &mut log, &mut events);
    }
    (log, events)
}

pub fn drain(
    layer: &mut TransactionLayer,
    start: Instant,
    now: Instant,
    log: &mut Log,
    events: &mut Vec<(Duration, TuEvent)>,
) {
    while let Some(t) = layer.poll_transmit() {
        log.push((now - start, t));
    }
    while let Some(e) = layer.poll_event() {
        events.push((now - start, e));
    }
}

pub fn offsets(log: &Log) -> Vec<Duration> {
    log.iter().map(|(d, _)| *d).collect()
}

pub fn secs(v: &[f64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}

pub fn is_request(t: &Transmit, method: &str) -> bool {
    matches!(&t.message, SipMessage::Request(r) if r.method.as_str() == method)
}

pub fn is_response(t: &Transmit, code: u16) -> bool {
    matches!(&t.message, SipMessage::Response(r) if r.code == code)
}

/// The TU of one side: reacts to each event at once, with access to its layer.
pub type Tu = Box<dyn FnMut(&mut TransactionLayer, Instant, &TuEvent)>;

/// One side of a [`Pair`].
pub struct Endpoint {
    pub layer: TransactionLayer,
    pub me: Peer,
    pub events: Vec<(Duration, TuEvent)>,
    pub sent: Log,
    pub tu: Option<Tu>,
}

/// Decides whether a message on the link is lost: (copy number of that exact message,
/// starting at 1; the transmit; true when travelling to the server).
pub type LossRule = Box<dyn FnMut(usize, &Transmit, bool) -> bool>;

struct InFlight {
    at: Instant,
    to_server: bool,
    message: SipMessage,
    from: Peer,
}

/// Two transaction layers and the network between them.
pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub client: Endpoint,
    pub server: Endpoint,
    pub delay: Duration,
    pub loss: LossRule,
    link: Vec<InFlight>,
    seen: Vec<(Vec<u8>, usize)>,
    pub lost: usize,
}

impl Pair {
    pub fn new(transport: Transport) -> Pair {
        let start = Instant::now();
        let side = |a: &str| Endpoint {
            layer: TransactionLayer::new(Default::default()),
            me: peer(transport, a),
            events: Vec::new(),
            sent: Vec::new(),
            tu: None,
        };
        Pair {
            start,
            now: start,
            client: side(CLIENT),
            server: side(SERVER),
            delay: ms(50),
            loss: Box::new(|_, _, _| false),
            link: Vec::new(),
            seen: Vec::new(),
            lost: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves outputs onto the link and events to the TUs until both sides are quiet.
    fn flush(&mut self) {
        let (server_addr, client_addr) = (self.server.me.addr, self.client.me.addr);
        loop {
            let mut moved = false;
            for to_server in [true, false] {
                let (ep, now, start) = if to_server {
                    (&mut self.client, self.now, self.start)
                } else {
                    (&mut self.server, self.now, self.start)
                };
                while let Some(e) = ep.layer.poll_event() {
                    moved = true;
                    if let Some(tu) = ep.tu.as_mut() {
                        tu(&mut ep.layer, now, &e);
                    }
                    ep.events.push((now - start, e));
                }
                while let Some(t) = ep.layer.poll_transmit() {
                    moved = true;
                    ep.sent.push((now - start, t.clone()));
                    let bytes = t.message.to_bytes();
                    let copy = match self.seen.iter_mut().find(|(b, _)| *b == bytes) {
                        Some((_, n)) => {
                            *n += 1;
                            *n
                        }
                        None => {
                            self.seen.push((bytes, 1));
                            1
                        }
                    };
                    let towards_server = t.peer.addr == server_addr;
                    let towards_client = t.peer.addr == client_addr;
                    if !(towards_server || towards_client) || (self.loss)(copy, &t, towards_server)
                    {
                        self.lost += 1;
                        continue;
                    }
                    self.link.push(InFlight {
                        at: now + self.delay,
                        to_server: towards_server,
                        message: t.message,
                        from: ep.me,
                    });
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// The next instant something happens: a delivery or a deadline.
    fn next_instant(&self) -> Option<Instant> {
        [
            self.link.iter().map(|f| f.at).min(),
            self.client.layer.poll_timeout(),
            self.server.layer.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs one step; false when nothing is left to happen before `limit` (from start).
    pub fn step(&mut self, limit: Duration) -> bool {
        self.flush();
        let Some(next) = self.next_instant() else {
            return false;
        };
        if next > self.start + limit {
            return false;
        }
        self.now = next.max(self.now);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.link.drain(..).partition(|f| f.at <= now);
        self.link = rest;
        for f in due {
            let ep = if f.to_server {
                &mut self.server
            } else {
                &mut self.client
            };
            ep.layer.handle_message(now, f.message, f.from);
            self.flush();
        }
        self.client.layer.handle_timeout(now);
        self.server.layer.handle_timeout(now);
        self.flush();
        true
    }

    /// Drives both sides until nothing is left to happen or `limit` passes.
    pub fn drive(&mut self, limit: Duration) {
        while self.step(limit) {}
    }

    /// Drives until `cond` holds (checked after every step); false if it never did.
    pub fn drive_until(&mut self, limit: Duration, mut cond: impl FnMut(&Pair) -> bool) -> bool {
        loop {
            if cond(self) {
                return true;
            }
            if !self.step(limit) {
                return cond(self);
            }
        }
    }

    /// Starts a client transaction from the client side.
    pub fn send_request(&mut self, request: Request) -> TxId {
        let dest = Peer {
            transport: self.server.me.transport,
            addr: self.server.me.addr,
        };
        let id = self.client.layer.send_request(self.now, request, dest);
        self.flush();
        id
    }
}

/// Events of one kind, for counting.
pub fn requests(ep: &Endpoint) -> Vec<&Request> {
    ep.events
        .iter()
        .filter_map(|(_, e)| match e {
            TuEvent::Request { request, .. } => Some(request),
            _ => None,
        })
        .collect()
}

pub fn responses(ep: &Endpoint) -> Vec<&Response> {
    ep.events
        .iter()
        .filter_map(|(_, e)| match e {
            TuEvent::Response { response, .. } => Some(response),
            _ => None,
        })
        .collect()
}

pub fn count(ep: &Endpoint, pred: impl Fn(&TuEvent) -> bool) -> usize {
    ep.events.iter().filter(|(_, e)| pred(e)).count()
}
