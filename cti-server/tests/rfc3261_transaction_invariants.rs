//! Property test of the transaction layer's bookkeeping (RFC 3261 §17): under any
//! interleaving of requests, responses, retransmissions, CANCELs and time, every transaction
//! ends with exactly one `Terminated`, no timer is left overdue after `handle_timeout`, and
//! once every transaction got its final answer the layer drains to empty.

mod sip_tx_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cti_server::sip::transaction::{TransactionLayer, TuEvent, TxId};
use cti_server::sip::{Request, SipMessage, Transport};
use proptest::prelude::*;
use sip_tx_common::*;

#[derive(Debug, Clone)]
enum Op {
    /// Start a client transaction.
    ClientSend {
        invite: bool,
        tcp: bool,
    },
    /// A response from the network for client request `idx`.
    ClientGets {
        idx: usize,
        code: u16,
    },
    /// CANCEL client INVITE `idx`.
    Cancel {
        idx: usize,
    },
    /// A request from the network (branch `b`: equal branches are retransmissions).
    ServerGets {
        method: usize,
        tcp: bool,
        b: u8,
    },
    /// The TU answers server transaction `idx`.
    ServerAnswers {
        idx: usize,
        code: u16,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let code = prop::sample::select(vec![100u16, 180, 200, 486]);
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(invite, tcp)| Op::ClientSend { invite, tcp }),
        (0..8usize, code.clone()).prop_map(|(idx, code)| Op::ClientGets { idx, code }),
        (0..8usize).prop_map(|idx| Op::Cancel { idx }),
        (0..4usize, any::<bool>(), 0..4u8).prop_map(|(method, tcp, b)| Op::ServerGets {
            method,
            tcp,
            b
        }),
        (0..8usize, code).prop_map(|(idx, code)| Op::ServerAnswers { idx, code }),
        (0..40_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

struct World {
    layer: TransactionLayer,
    t0: Instant,
    now: Instant,
    sent: Vec<(TxId, Request, Transport)>,
    server_txs: Vec<(TxId, Request)>,
    known: Vec<TxId>,
    terminated: HashMap<TxId, usize>,
    branch_seq: u32,
}

impl World {
    fn drain(&mut self) {
        while self.layer.poll_transmit().is_some() {}
        while let Some(e) = self.layer.poll_event() {
            match e {
                TuEvent::Request { tx, request, .. } => {
                    self.known.push(tx);
                    self.server_txs.push((tx, request));
                }
                TuEvent::Cancel {
                    cancel_tx, request, ..
                } => {
                    self.known.push(cancel_tx);
                    self.server_txs.push((cancel_tx, request));
                }
                TuEvent::Terminated { tx } => *self.terminated.entry(tx).or_default() += 1,
                _ => {}
            }
        }
        if let Some(at) = self.layer.poll_timeout() {
            assert!(
                at > self.now || self.now == self.t0,
                "overdue timer left at {at:?}"
            );
        }
    }

    fn apply(&mut self, op: Op) {
        let transport = |tcp| if tcp { Transport::Tcp } else { Transport::Udp };
        match op {
            Op::ClientSend { invite, tcp } => {
                self.branch_seq += 1;
                let method = if invite { "INVITE" } else { "OPTIONS" };
                let req = request(
                    method,
                    transport(tcp),
                    &format!("z9hG4bKc{}", self.branch_seq),
                    self.branch_seq,
                );
                let id =
                    self.layer
                        .send_request(self.now, req.clone(), peer(transport(tcp), SERVER));
                self.known.push(id);
                self.sent.push((id, req, transport(tcp)));
            }
            Op::ClientGets { idx, code } => {
                if let Some((_, req, t)) = self.sent.get(idx) {
                    let resp = answer(req, code);
                    self.layer.handle_message(
                        self.now,
                        SipMessage::Response(resp),
                        peer(*t, SERVER),
                    );
                }
            }
            Op::Cancel { idx } => {
                if let Some((id, _, _)) = self.sent.get(idx)
                    && let Some(c) = self.layer.cancel(self.now, *id)
                    && !self.known.contains(&c)
                {
                    self.known.push(c);
                }
            }
            Op::ServerGets { method, tcp, b } => {
                let m = ["INVITE", "BYE", "ACK", "CANCEL"][method];
                let req = request(m, transport(tcp), &format!("z9hG4bKs{b}"), 1);
                self.layer.handle_message(
                    self.now,
                    SipMessage::Request(req),
                    peer(transport(tcp), CLIENT),
                );
            }
            Op::ServerAnswers { idx, code } => {
                if let Some((tx, req)) = self.server_txs.get(idx) {
                    self.layer.send_response(self.now, *tx, answer(req, code));
                }
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                self.layer.handle_timeout(self.now);
            }
        }
        self.drain();
    }

    /// Final answers everywhere, then time enough for every wait timer.
    fn finish(&mut self) {
        for (_, req, t) in self.sent.clone() {
            let resp = answer(&req, 486);
            self.layer
                .handle_message(self.now, SipMessage::Response(resp), peer(t, SERVER));
            self.drain();
        }
        for (tx, req) in self.server_txs.clone() {
            self.layer.send_response(self.now, tx, answer(&req, 500));
            self.drain();
        }
        for _ in 0..4 {
            self.now += Duration::from_secs(100);
            self.layer.handle_timeout(self.now);
            self.drain();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_transaction_terminates_exactly_once(ops in prop::collection::vec(op(), 1..60)) {
        let t0 = Instant::now();
        let mut w = World {
            layer: TransactionLayer::new(Default::default()),
            t0,
            now: t0,
            sent: Vec::new(),
            server_txs: Vec::new(),
            known: Vec::new(),
            terminated: HashMap::new(),
            branch_seq: 0,
        };
        for op in ops {
            w.apply(op);
        }
        w.finish();
        prop_assert_eq!(w.layer.len(), 0);
        prop_assert_eq!(w.layer.poll_timeout(), None);
        for (id, n) in &w.terminated {
            prop_assert_eq!(*n, 1, "{} terminated {} times", id, n);
        }
        for id in &w.known {
            prop_assert!(w.terminated.contains_key(id), "{} never terminated", id);
        }
    }
}
