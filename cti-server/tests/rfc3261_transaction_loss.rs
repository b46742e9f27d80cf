//! RFC 3261 §17 end to end: a client and a server transaction layer over a lossy, delaying
//! link (50 ms each way). Lost requests and responses are recovered by the timers and the TU
//! on each side sees every request and every non-2xx response exactly once. Also CANCEL
//! (§9.1, §9.2), including a CANCEL crossing the 200 OK.

mod sip_tx_common;

use std::collections::HashMap;
use std::time::Duration;

use cti_server::sip::dialog::{Dialog, LocalVia};
use cti_server::sip::transaction::{Peer, TuEvent, TxId};
use cti_server::sip::{HeaderName, Method, Request, Response, SipHeaders, SipMessage, Transport};
use sip_tx_common::*;

fn is_method(t: &cti_server::sip::transaction::Transmit, m: &str) -> bool {
    match &t.message {
        SipMessage::Request(r) => r.method.as_str() == m,
        SipMessage::Response(r) => r.cseq().is_some_and(|c| c.method.as_str() == m),
    }
}

fn code_of(t: &cti_server::sip::transaction::Transmit) -> Option<u16> {
    match &t.message {
        SipMessage::Response(r) => Some(r.code),
        _ => None,
    }
}

/// The UAS answer with a Contact, so the UAC can build its dialog.
fn answer_with_contact(request: &Request, code: u16) -> Response {
    let mut r = answer(request, code);
    r.headers
        .push(HeaderName::Contact, "<sip:agent@10.0.0.2:5060>");
    r
}

/// A UAC TU that ACKs every 2xx to INVITE, re-sending the same ACK for retransmissions
/// (§13.2.2.4), through a dialog built from the 2xx.
fn acking_client(pair: &mut Pair, invite: Request) {
    let server = pair.server.me;
    let mut acks: HashMap<Option<String>, Request> = HashMap::new();
    pair.client.tu = Some(Box::new(move |layer, _now, ev| {
        if let TuEvent::Response { response, .. } = ev
            && response.code / 100 == 2
            && response.cseq().is_some_and(|c| c.method == Method::Invite)
        {
            let ack = acks.entry(response.to_tag()).or_insert_with(|| {
                let dialog = Dialog::uac(&invite, response).expect("dialog from 2xx");
                let via = LocalVia::new(Transport::Udp, "10.0.0.1", Some(5060));
                dialog.create_ack(1, &via)
            });
            layer.send_stateless(SipMessage::Request(ack.clone()), server);
        }
    }));
}

/// A UAS TU that answers every INVITE with 180 then `code`, and every other request with 200.
fn answering_server(pair: &mut Pair, code: u16) {
    pair.server.tu = Some(Box::new(move |layer, now, ev| {
        if let TuEvent::Request { tx, request, .. } = ev {
            if request.method == Method::Invite {
                layer.send_response(now, *tx, answer_with_contact(request, 180));
                layer.send_response(now, *tx, answer_with_contact(request, code));
            } else {
                layer.send_response(now, *tx, answer(request, 200));
            }
        }
    }));
}

fn lose(rules: Vec<(&'static str, Option<u16>, usize)>) -> LossRule {
    Box::new(move |copy, t, _| {
        rules
            .iter()
            .any(|(m, code, n)| is_method(t, m) && code_of(t) == *code && copy <= *n)
    })
}

#[test]
fn invite_survives_lost_invites_lost_200_and_lost_ack() {
    let mut pair = Pair::new(Transport::Udp);
    pair.loss = lose(vec![
        ("INVITE", None, 2),
        ("INVITE", Some(200), 1),
        ("ACK", None, 1),
    ]);
    let inv = invite(Transport::Udp);
    acking_client(&mut pair, inv.clone());
    answering_server(&mut pair, 200);
    pair.send_request(inv);
    pair.drive(Duration::from_secs(100));

    assert!(pair.lost >= 4, "the rules dropped {} messages", pair.lost);
    assert_eq!(requests(&pair.server).len(), 1, "one INVITE for the UAS");
    let acks = count(&pair.server, |e| {
        matches!(e, TuEvent::Ack { tx: Some(_), .. })
    });
    assert_eq!(acks, 1, "the ACK reaches the UAS TU once");
    assert_eq!(
        count(&pair.server, |e| matches!(e, TuEvent::AckTimeout { .. })),
        0
    );
    let codes: Vec<u16> = responses(&pair.client).iter().map(|r| r.code).collect();
    assert_eq!(codes.iter().filter(|c| **c == 180).count(), 1);
    assert!(
        codes.iter().filter(|c| **c == 200).count() >= 2,
        "2xx retransmissions go up: {codes:?}"
    );
    assert_eq!(pair.client.layer.len(), 0);
    assert_eq!(pair.server.layer.len(), 0);
}

#[test]
fn non_invite_survives_lost_requests_and_lost_final() {
    let mut pair = Pair::new(Transport::Udp);
    pair.loss = lose(vec![("OPTIONS", None, 3), ("OPTIONS", Some(200), 1)]);
    answering_server(&mut pair, 200);
    pair.send_request(request("OPTIONS", Transport::Udp, "z9hG4bKopt", 1));
    pair.drive(Duration::from_secs(100));
    assert_eq!(pair.lost, 4);
    assert_eq!(requests(&pair.server).len(), 1);
    assert_eq!(responses(&pair.client).len(), 1);
    assert_eq!(
        count(&pair.client, |e| matches!(e, TuEvent::Timeout { .. })),
        0
    );
    assert_eq!(pair.client.layer.len(), 0);
    assert_eq!(pair.server.layer.len(), 0);
}

#[test]
fn non_2xx_final_and_its_ack_survive_loss() {
    let mut pair = Pair::new(Transport::Udp);
    pair.loss = lose(vec![("INVITE", Some(486), 2), ("ACK", None, 1)]);
    answering_server(&mut pair, 486);
    pair.send_request(invite(Transport::Udp));
    pair.drive(Duration::from_secs(100));
    let codes: Vec<u16> = responses(&pair.client).iter().map(|r| r.code).collect();
    assert_eq!(codes, vec![180, 486]);
    assert_eq!(requests(&pair.server).len(), 1);
    // The ACK for a non-2xx never reaches the UAS TU, and it did arrive (no Timer H).
    assert_eq!(count(&pair.server, |e| matches!(e, TuEvent::Ack { .. })), 0);
    assert_eq!(
        count(&pair.server, |e| matches!(e, TuEvent::Timeout { .. })),
        0
    );
    let acks_sent = pair
        .client
        .sent
        .iter()
        .filter(|(_, t)| is_request(t, "ACK"))
        .count();
    assert_eq!(
        acks_sent, 2,
        "the lost ACK is re-sent on the retransmitted 486"
    );
    assert_eq!(pair.client.layer.len(), 0);
    assert_eq!(pair.server.layer.len(), 0);
}

#[test]
fn cancel_crossing_the_200_gets_200_and_no_487() {
    let mut pair = Pair::new(Transport::Udp);
    let inv = invite(Transport::Udp);
    acking_client(&mut pair, inv.clone());
    pair.server.tu = Some(Box::new(|layer, now, ev| {
        if let TuEvent::Request { tx, request, .. } = ev {
            layer.send_response(now, *tx, answer_with_contact(request, 180));
        }
    }));
    let invite_tx = pair.send_request(inv);
    assert!(pair.drive_until(Duration::from_secs(5), |p| !responses(&p.client).is_empty()));
    let (server_tx, server_req) = match &pair.server.events[0].1 {
        TuEvent::Request { tx, request, .. } => (*tx, request.clone()),
        e => panic!("{e:?}"),
    };
    // Same instant: the UAC cancels while the UAS answers 200; the two cross on the wire.
    let now = pair.now;
    let cancel_tx = pair
        .client
        .layer
        .cancel(now, invite_tx)
        .expect("INVITE is pending");
    pair.server
        .layer
        .send_response(now, server_tx, answer_with_contact(&server_req, 200));
    pair.drive(Duration::from_secs(100));

    assert_eq!(
        count(&pair.server, |e| matches!(e, TuEvent::Cancel { .. })),
        0
    );
    assert!(
        !pair
            .server
            .sent
            .iter()
            .any(|(_, t)| code_of(t) == Some(487))
    );
    let cancel_ok = pair
        .server
        .sent
        .iter()
        .any(|(_, t)| is_method(t, "CANCEL") && code_of(t) == Some(200));
    assert!(cancel_ok, "the UAS layer answers the late CANCEL with 200");
    let client_events: Vec<(TxId, u16)> = pair
        .client
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            TuEvent::Response { tx, response } => Some((*tx, response.code)),
            _ => None,
        })
        .collect();
    assert!(client_events.contains(&(invite_tx, 200)));
    assert!(client_events.contains(&(cancel_tx, 200)));
    assert!(
        pair.client.sent.iter().any(|(_, t)| is_request(t, "ACK")),
        "the 2xx is ACKed"
    );
    assert_eq!(
        count(&pair.server, |e| matches!(
            e,
            TuEvent::Ack { tx: Some(_), .. }
        )),
        1
    );
    assert_eq!(pair.client.layer.len(), 0);
    assert_eq!(pair.server.layer.len(), 0);
}

#[test]
fn cancel_waits_for_a_provisional_then_the_uas_answers_487() {
    let mut pair = Pair::new(Transport::Udp);
    let mut invites: HashMap<TxId, Request> = HashMap::new();
    pair.server.tu = Some(Box::new(move |layer, now, ev| match ev {
        TuEvent::Request { tx, request, .. } => {
            invites.insert(*tx, request.clone());
            layer.send_response(now, *tx, answer_with_contact(request, 180));
        }
        TuEvent::Cancel {
            invite_tx,
            cancel_tx,
            request,
            ..
        } => {
            layer.send_response(now, *cancel_tx, answer(request, 200));
            if let Some(inv) = invites.get(invite_tx) {
                layer.send_response(now, *invite_tx, answer(inv, 487));
            }
        }
        _ => {}
    }));
    // The 180 is lost once, so the CANCEL must wait for the retransmitted one.
    pair.loss = lose(vec![("INVITE", Some(180), 1)]);
    let invite_tx = pair.send_request(invite(Transport::Udp));
    let cancel_tx = pair
        .client
        .layer
        .cancel(pair.now, invite_tx)
        .expect("pending");
    assert_eq!(
        pair.client.layer.cancel(pair.now, invite_tx),
        Some(cancel_tx)
    );
    pair.drive(Duration::from_secs(100));

    let first_cancel = pair
        .client
        .sent
        .iter()
        .find(|(_, t)| is_request(t, "CANCEL"))
        .map(|(d, _)| *d);
    let first_180 = pair
        .client
        .events
        .iter()
        .find(|(_, e)| matches!(e, TuEvent::Response { response, .. } if response.code == 180))
        .map(|(d, _)| *d);
    assert!(
        first_cancel.is_some() && first_cancel == first_180,
        "CANCEL goes with the first 1xx"
    );
    let SipMessage::Request(cancel) = &pair
        .client
        .sent
        .iter()
        .find(|(_, t)| is_request(t, "CANCEL"))
        .unwrap()
        .1
        .message
    else {
        unreachable!()
    };
    assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKinvite1"));
    assert_eq!(
        count(&pair.server, |e| matches!(e, TuEvent::Cancel { .. })),
        1
    );
    let got: Vec<(TxId, u16)> = pair
        .client
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            TuEvent::Response { tx, response } => Some((*tx, response.code)),
            _ => None,
        })
        .collect();
    assert!(
        got.contains(&(cancel_tx, 200)) && got.contains(&(invite_tx, 487)),
        "{got:?}"
    );
    assert!(
        pair.client.sent.iter().any(|(_, t)| is_request(t, "ACK")),
        "487 is ACKed by the transaction"
    );
    assert_eq!(pair.client.layer.cancel(pair.now, invite_tx), None);
    assert_eq!(pair.client.layer.len(), 0);
    assert_eq!(pair.server.layer.len(), 0);
}

#[test]
fn cancel_never_sent_when_the_final_comes_first() {
    let mut pair = Pair::new(Transport::Udp);
    answering_server(&mut pair, 486);
    // The 180 is lost for good: the 486 is the first response.
    pair.loss = lose(vec![("INVITE", Some(180), usize::MAX)]);
    let invite_tx = pair.send_request(invite(Transport::Udp));
    let cancel_tx = pair.client.layer.cancel(pair.now, invite_tx).unwrap();
    pair.drive(Duration::from_secs(100));
    assert!(
        !pair
            .client
            .sent
            .iter()
            .any(|(_, t)| is_request(t, "CANCEL"))
    );
    assert_eq!(
        count(&pair.client, |e| *e
            == TuEvent::Terminated { tx: cancel_tx }),
        1
    );
}

#[test]
fn tcp_exchange_has_no_retransmissions() {
    let mut pair = Pair::new(Transport::Tcp);
    let inv = invite(Transport::Tcp);
    acking_client(&mut pair, inv.clone());
    answering_server(&mut pair, 200);
    pair.send_request(inv);
    pair.drive(Duration::from_secs(100));
    let invites = pair
        .client
        .sent
        .iter()
        .filter(|(_, t)| is_request(t, "INVITE"))
        .count();
    let oks = pair
        .server
        .sent
        .iter()
        .filter(|(_, t)| code_of(t) == Some(200))
        .count();
    assert_eq!((invites, oks), (1, 1));
    let _: Peer = pair.server.me;
}
