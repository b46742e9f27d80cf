//! RFC 3261 §17.2.2: the non-INVITE server transaction: absorbed retransmissions and Timer J.

mod sip_tx_common;

use std::time::{Duration, Instant};

use cti_server::sip::transaction::{TransactionLayer, TuEvent, TxId};
use cti_server::sip::{Request, SipMessage, Transport};
use sip_tx_common::*;

fn start(transport: Transport) -> (TransactionLayer, Instant, TxId, Request) {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    layer.handle_message(
        t0,
        SipMessage::Request(bye(transport)),
        peer(transport, CLIENT),
    );
    let Some(TuEvent::Request { tx, request, .. }) = layer.poll_event() else {
        panic!("BYE not delivered")
    };
    (layer, t0, tx, request)
}

fn bye(transport: Transport) -> Request {
    request("BYE", transport, "z9hG4bKbye1", 2)
}

fn retransmit(layer: &mut TransactionLayer, at: Instant, transport: Transport) {
    layer.handle_message(
        at,
        SipMessage::Request(bye(transport)),
        peer(transport, CLIENT),
    );
}

#[test]
fn trying_absorbs_retransmissions_silently() {
    let (mut layer, t0, _, _) = start(Transport::Udp);
    retransmit(&mut layer, t0 + ms(500), Transport::Udp);
    assert_eq!(layer.poll_transmit(), None);
    assert_eq!(layer.poll_event(), None);
    assert_eq!(layer.len(), 1);
}

#[test]
fn proceeding_and_completed_resend_the_last_response() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0, tx, answer(&req, 100));
    assert!(is_response(&layer.poll_transmit().unwrap(), 100));
    retransmit(&mut layer, t0 + ms(500), Transport::Udp);
    assert!(is_response(&layer.poll_transmit().unwrap(), 100));
    layer.send_response(t0 + ms(600), tx, answer(&req, 200));
    assert!(is_response(&layer.poll_transmit().unwrap(), 200));
    retransmit(&mut layer, t0 + ms(1500), Transport::Udp);
    assert!(is_response(&layer.poll_transmit().unwrap(), 200));
    assert_eq!(layer.poll_event(), None);
    // A second final from the TU is refused.
    layer.send_response(t0 + ms(1600), tx, answer(&req, 500));
    assert_eq!(layer.poll_transmit(), None);
}

#[test]
fn timer_j_keeps_completed_for_64_t1() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0 + ms(100), tx, answer(&req, 200));
    let _ = layer.poll_transmit();
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + ms(100) + Duration::from_secs(32))
    );
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert!(log.is_empty(), "no retransmission of non-INVITE finals");
    assert_eq!(events[0].0, ms(32_100));
    assert!(matches!(events[0].1, TuEvent::Terminated { tx: t } if t == tx));
    // After J a retransmission is a new request.
    retransmit(&mut layer, t0 + Duration::from_secs(40), Transport::Udp);
    assert!(matches!(layer.poll_event(), Some(TuEvent::Request { .. })));
}

#[test]
fn tcp_timer_j_is_zero() {
    let (mut layer, t0, tx, req) = start(Transport::Tcp);
    layer.send_response(t0, tx, answer(&req, 200));
    assert!(is_response(&layer.poll_transmit().unwrap(), 200));
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
    assert_eq!(layer.len(), 0);
    assert_eq!(layer.poll_timeout(), None);
}
