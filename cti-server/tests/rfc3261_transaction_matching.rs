//! RFC 3261 §17.2.3 server-transaction matching (magic-cookie branches and the RFC 2543
//! fallback), §9.2 CANCEL matching, and §18.2.2 / RFC 3581 response routing with
//! `received` and `rport`.

mod sip_tx_common;

use std::time::Instant;

use cti_server::sip::transaction::{Peer, TransactionLayer, TuEvent, response_destination};
use cti_server::sip::{HeaderName, Request, SipHeaders, SipMessage, Transport, Via};
use sip_tx_common::*;

fn deliver(layer: &mut TransactionLayer, at: Instant, req: Request, from: Peer) {
    layer.handle_message(at, SipMessage::Request(req), from);
}

fn rfc2543_invite(call_id: &str) -> Request {
    parse_request(&format!(
        "INVITE sip:agent@10.0.0.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060\r\n\
From: <sip:old@10.0.0.1>;tag=oldfrom\r\n\
To: <sip:agent@10.0.0.2>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 9 INVITE\r\n\
Contact: <sip:old@10.0.0.1>\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

#[test]
fn rfc2543_requests_without_the_cookie_match_by_dialog_fields() {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let src = peer(Transport::Udp, CLIENT);
    deliver(&mut layer, t0, rfc2543_invite("old-1"), src);
    let Some(TuEvent::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    // A retransmission is absorbed; a different Call-ID is a new transaction.
    deliver(&mut layer, t0 + ms(10), rfc2543_invite("old-1"), src);
    assert_eq!(layer.poll_event(), None);
    deliver(&mut layer, t0 + ms(20), rfc2543_invite("old-2"), src);
    assert!(matches!(layer.poll_event(), Some(TuEvent::Request { .. })));
    // A branch without the cookie is matched the old way too.
    let mut odd = rfc2543_invite("old-1");
    odd.headers
        .set(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1:5060;branch=1234");
    deliver(&mut layer, t0 + ms(30), odd, src);
    assert!(
        matches!(layer.poll_event(), Some(TuEvent::Request { .. })),
        "a different Via is another transaction"
    );

    // The ACK for the 404 carries the To tag of the response: it matches and is absorbed.
    layer.send_response(
        t0 + ms(40),
        tx,
        request.response(404, "Not Found", Some("t404")),
    );
    while layer.poll_transmit().is_some() {}
    let mut ack = rfc2543_invite("old-1");
    ack.method = cti_server::sip::Method::Ack;
    ack.headers.set(HeaderName::CSeq, "9 ACK");
    ack.headers
        .set(HeaderName::To, "<sip:agent@10.0.0.2>;tag=t404");
    deliver(&mut layer, t0 + ms(50), ack.clone(), src);
    assert_eq!(layer.poll_event(), None, "matched, so absorbed");
    // Confirmed: Timer G stopped, so no 404 goes out again.
    layer.handle_timeout(t0 + ms(2000));
    while let Some(t) = layer.poll_transmit() {
        assert!(!is_response(&t, 404), "404 retransmitted after its ACK");
    }
    while layer.poll_event().is_some() {}
    // A stray ACK with another To tag is the TU's business.
    ack.headers
        .set(HeaderName::To, "<sip:agent@10.0.0.2>;tag=other");
    deliver(&mut layer, t0 + ms(60), ack, src);
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Ack { tx: None, .. })
    ));
}

#[test]
fn branch_matching_needs_the_same_sent_by() {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let src = peer(Transport::Udp, CLIENT);
    deliver(&mut layer, t0, invite(Transport::Udp), src);
    assert!(matches!(layer.poll_event(), Some(TuEvent::Request { .. })));
    let mut other = invite(Transport::Udp);
    other.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKinvite1",
    );
    deliver(&mut layer, t0, other, src);
    assert!(matches!(layer.poll_event(), Some(TuEvent::Request { .. })));
    assert_eq!(layer.len(), 2);
}

#[test]
fn cancel_matching_nothing_is_answered_481_by_the_layer() {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let cancel = request("CANCEL", Transport::Udp, "z9hG4bKnothing", 1);
    deliver(&mut layer, t0, cancel.clone(), peer(Transport::Udp, CLIENT));
    assert!(is_response(&layer.poll_transmit().unwrap(), 481));
    assert_eq!(layer.poll_event(), None);
    // Its retransmission gets the 481 again.
    deliver(
        &mut layer,
        t0 + ms(500),
        cancel,
        peer(Transport::Udp, CLIENT),
    );
    assert!(is_response(&layer.poll_transmit().unwrap(), 481));
}

#[test]
fn cancel_for_a_pending_invite_goes_to_the_tu() {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let src = peer(Transport::Udp, CLIENT);
    deliver(&mut layer, t0, invite(Transport::Udp), src);
    let Some(TuEvent::Request { tx, .. }) = layer.poll_event() else {
        panic!()
    };
    deliver(
        &mut layer,
        t0 + ms(100),
        request("CANCEL", Transport::Udp, "z9hG4bKinvite1", 1),
        src,
    );
    match layer.poll_event() {
        Some(TuEvent::Cancel {
            invite_tx,
            cancel_tx,
            ..
        }) => {
            assert_eq!(invite_tx, tx);
            assert_ne!(cancel_tx, tx);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(layer.poll_transmit(), None, "the TU answers");
}

#[test]
fn received_and_rport_are_stamped_and_responses_follow_them() {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let nat = peer(Transport::Udp, "203.0.113.9:40000");
    let mut req = request("OPTIONS", Transport::Udp, "z9hG4bKnat", 1);
    req.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 192.168.1.5:5070;rport;branch=z9hG4bKnat",
    );
    deliver(&mut layer, t0, req, nat);
    let Some(TuEvent::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    let via = request.top_via().unwrap();
    assert_eq!(via.received(), Some("203.0.113.9"));
    assert_eq!(via.rport(), Some(Some(40000)));
    layer.send_response(t0, tx, request.response(200, "OK", Some("x")));
    let t = layer.poll_transmit().unwrap();
    assert_eq!(t.peer, nat, "RFC 3581: back to the source port");
    let SipMessage::Response(resp) = t.message else {
        panic!()
    };
    assert_eq!(resp.top_via().unwrap().received(), Some("203.0.113.9"));

    // Without rport: the source IP, the Via port.
    let mut req = sip_tx_common::request("OPTIONS", Transport::Udp, "z9hG4bKnat2", 1);
    req.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 192.168.1.5:5070;branch=z9hG4bKnat2",
    );
    deliver(&mut layer, t0, req, nat);
    let Some(TuEvent::Request { tx, request, .. }) = layer.poll_event() else {
        panic!()
    };
    assert_eq!(request.top_via().unwrap().rport(), None);
    assert_eq!(request.top_via().unwrap().received(), Some("203.0.113.9"));
    layer.send_response(t0, tx, request.response(200, "OK", Some("x")));
    assert_eq!(
        layer.poll_transmit().unwrap().peer,
        peer(Transport::Udp, "203.0.113.9:5070")
    );

    // Same IP as sent-by and no rport: the Via is left alone.
    deliver(
        &mut layer,
        t0,
        request_from_client(),
        peer(Transport::Udp, CLIENT),
    );
    let Some(TuEvent::Request { request, .. }) = layer.poll_event() else {
        panic!()
    };
    assert_eq!(request.top_via().unwrap().received(), None);
}

fn request_from_client() -> Request {
    sip_tx_common::request("OPTIONS", Transport::Udp, "z9hG4bKplain", 3)
}

#[test]
fn response_destination_rules() {
    let via = |s: &str| Via::parse_list(s).unwrap().remove(0);
    let udp_src = peer(Transport::Udp, "198.51.100.7:33333");
    assert_eq!(
        response_destination(
            &via("SIP/2.0/UDP host.example.com;branch=z9hG4bKa"),
            udp_src
        ),
        peer(Transport::Udp, "198.51.100.7:5060")
    );
    assert_eq!(
        response_destination(
            &via("SIP/2.0/UDP host.example.com:5080;branch=z9hG4bKa"),
            udp_src
        ),
        peer(Transport::Udp, "198.51.100.7:5080")
    );
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP h;rport;branch=z9hG4bKa"), udp_src),
        udp_src
    );
    assert_eq!(
        response_destination(&via("SIP/2.0/UDP h;rport=4444;branch=z9hG4bKa"), udp_src),
        peer(Transport::Udp, "198.51.100.7:4444")
    );
    let tcp_src = peer(Transport::Tcp, "198.51.100.7:50123");
    assert_eq!(
        response_destination(&via("SIP/2.0/TCP h:5060;branch=z9hG4bKa"), tcp_src),
        tcp_src
    );
}

#[test]
fn odd_peer_input_is_dropped_or_reported_never_a_panic() {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let src = peer(Transport::Udp, CLIENT);
    // A response whose Via has no branch: stray.
    let mut req = sip_tx_common::request("OPTIONS", Transport::Udp, "z9hG4bKx", 1);
    req.headers
        .set(HeaderName::Via, "SIP/2.0/UDP 10.0.0.1:5060");
    layer.handle_message(t0, SipMessage::Response(req.response(200, "OK", None)), src);
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::StrayResponse { .. })
    ));
    // An ACK with no tags and no transaction: the TU's business.
    let ack = sip_tx_common::request("ACK", Transport::Udp, "z9hG4bKlonely", 1);
    deliver(&mut layer, t0, ack, src);
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Ack { tx: None, .. })
    ));
    // An RFC 2543 request without a From tag still makes a transaction.
    let mut old = rfc2543_invite("old-3");
    old.headers.set(HeaderName::From, "<sip:old@10.0.0.1>");
    deliver(&mut layer, t0, old.clone(), src);
    assert!(matches!(layer.poll_event(), Some(TuEvent::Request { .. })));
    deliver(&mut layer, t0, old, src);
    assert_eq!(layer.poll_event(), None);
    // Responses on unknown or client-less ids are ignored.
    let bogus = layer.send_request(
        t0,
        sip_tx_common::request("ACK", Transport::Udp, "z9hG4bKa", 1),
        peer(Transport::Udp, SERVER),
    );
    layer.send_response(t0, bogus, req.response(200, "OK", None));
    assert_eq!(layer.cancel(t0, bogus), None);
}
