//! RFC 3261 §17.2.1 (with RFC 6026 §8.5-§8.7 and §13.3.1.4): the INVITE server transaction's
//! 100 Trying, timers G, H, I, L and the 2xx retransmission, on a virtual clock.

mod sip_tx_common;

use std::time::{Duration, Instant};

use cti_server::sip::transaction::{TransactionLayer, TuEvent, TxId};
use cti_server::sip::{HeaderName, Request, SipMessage, Transport};
use sip_tx_common::*;

/// A server layer that received one INVITE at t0; returns its tx and the delivered request.
fn start(transport: Transport) -> (TransactionLayer, Instant, TxId, Request) {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    layer.handle_message(
        t0,
        SipMessage::Request(invite(transport)),
        peer(transport, CLIENT),
    );
    let Some(TuEvent::Request { tx, request, .. }) = layer.poll_event() else {
        panic!("INVITE not delivered")
    };
    (layer, t0, tx, request)
}

fn ack_for_2xx(transport: Transport) -> Request {
    let mut ack = request("ACK", transport, "z9hG4bKack2xx", 1);
    ack.headers
        .set(HeaderName::To, "<sip:agent@10.0.0.2>;tag=totag");
    ack
}

fn ack_for_non_2xx(transport: Transport) -> Request {
    let mut ack = request("ACK", transport, "z9hG4bKinvite1", 1);
    ack.headers
        .set(HeaderName::To, "<sip:agent@10.0.0.2>;tag=totag");
    ack
}

#[test]
fn trying_goes_out_after_200ms_of_tu_silence_and_answers_retransmissions() {
    let (mut layer, t0, _, _) = start(Transport::Udp);
    assert_eq!(layer.poll_transmit(), None);
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(200)));
    layer.handle_timeout(t0 + ms(200));
    assert!(is_response(&layer.poll_transmit().expect("100"), 100));
    layer.handle_message(
        t0 + ms(500),
        SipMessage::Request(invite(Transport::Udp)),
        peer(Transport::Udp, CLIENT),
    );
    assert!(is_response(&layer.poll_transmit().expect("100 again"), 100));
    assert_eq!(
        layer.poll_event(),
        None,
        "the retransmitted INVITE is absorbed"
    );
}

#[test]
fn no_automatic_trying_when_the_tu_rings_first() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0 + ms(50), tx, answer(&req, 180));
    assert!(is_response(&layer.poll_transmit().unwrap(), 180));
    let (log, _) = run_alone(&mut layer, t0, Duration::from_secs(1));
    assert!(log.is_empty(), "{log:?}");
    // The retransmitted INVITE gets the 180 again.
    layer.handle_message(
        t0 + ms(600),
        SipMessage::Request(invite(Transport::Udp)),
        peer(Transport::Udp, CLIENT),
    );
    assert!(is_response(&layer.poll_transmit().unwrap(), 180));
}

#[test]
fn timer_g_retransmits_non_2xx_capped_at_t2_and_timer_h_times_out() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0, tx, answer(&req, 486));
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert!(log.iter().all(|(_, t)| is_response(t, 486)));
    assert_eq!(
        offsets(&log),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::Timeout { tx: t } if t == tx));
    assert!(matches!(events[1].1, TuEvent::Terminated { .. }));
    assert_eq!(layer.len(), 0);
}

#[test]
fn ack_for_non_2xx_is_absorbed_and_timer_i_runs_t4() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0, tx, answer(&req, 486));
    let _ = layer.poll_transmit();
    layer.handle_timeout(t0 + ms(500));
    assert!(is_response(&layer.poll_transmit().unwrap(), 486));
    let ack = ack_for_non_2xx(Transport::Udp);
    layer.handle_message(
        t0 + ms(700),
        SipMessage::Request(ack.clone()),
        peer(Transport::Udp, CLIENT),
    );
    layer.handle_message(
        t0 + ms(800),
        SipMessage::Request(ack),
        peer(Transport::Udp, CLIENT),
    );
    assert_eq!(
        layer.poll_event(),
        None,
        "hop-by-hop ACKs stay in the transaction"
    );
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(5700)));
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert!(log.is_empty(), "G stopped by the ACK");
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0].1, TuEvent::Terminated { .. }));
}

#[test]
fn accepted_retransmits_2xx_until_the_ack_then_timer_l_ends_it_quietly() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0, tx, answer(&req, 200));
    let (mut log, mut events) = (Vec::new(), Vec::new());
    drain(&mut layer, t0, t0, &mut log, &mut events);
    for at in [500, 1500, 3500] {
        layer.handle_timeout(t0 + ms(at));
        drain(&mut layer, t0, t0 + ms(at), &mut log, &mut events);
    }
    assert_eq!(offsets(&log), secs(&[0.0, 0.5, 1.5, 3.5]));
    assert!(log.iter().all(|(_, t)| is_response(t, 200)));
    // The INVITE retransmitted in Accepted is absorbed (RFC 6026 §7.1).
    layer.handle_message(
        t0 + ms(3600),
        SipMessage::Request(invite(Transport::Udp)),
        peer(Transport::Udp, CLIENT),
    );
    let ack = ack_for_2xx(Transport::Udp);
    layer.handle_message(
        t0 + ms(4000),
        SipMessage::Request(ack.clone()),
        peer(Transport::Udp, CLIENT),
    );
    layer.handle_message(
        t0 + ms(4100),
        SipMessage::Request(ack),
        peer(Transport::Udp, CLIENT),
    );
    drain(&mut layer, t0, t0 + ms(4100), &mut log, &mut events);
    assert_eq!(log.len(), 4, "nothing answers the INVITE retransmission");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(events[0].1, TuEvent::Ack { tx: Some(t), .. } if t == tx));
    let (more, later) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert!(more.is_empty(), "the ACK stopped the 2xx retransmissions");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].0, Duration::from_secs(32), "Timer L");
    assert!(matches!(later[0].1, TuEvent::Terminated { .. }));
}

#[test]
fn timer_l_without_ack_reports_ack_timeout() {
    let (mut layer, t0, tx, req) = start(Transport::Udp);
    layer.send_response(t0, tx, answer(&req, 200));
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert_eq!(
        offsets(&log),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::AckTimeout { tx: t } if t == tx));
    assert!(matches!(events[1].1, TuEvent::Terminated { .. }));
}

#[test]
fn tcp_sends_no_retransmissions_and_timer_i_is_zero() {
    let (mut layer, t0, tx, req) = start(Transport::Tcp);
    layer.send_response(t0 + ms(10), tx, answer(&req, 486));
    let (log, _) = run_alone(&mut layer, t0, Duration::from_secs(5));
    assert_eq!(offsets(&log), secs(&[0.0]), "no Timer G over TCP");
    layer.handle_message(
        t0 + Duration::from_secs(5),
        SipMessage::Request(ack_for_non_2xx(Transport::Tcp)),
        peer(Transport::Tcp, CLIENT),
    );
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
    assert_eq!(layer.len(), 0);
}

#[test]
fn tcp_2xx_is_not_retransmitted_and_timer_h_still_runs() {
    let (mut layer, t0, tx, req) = start(Transport::Tcp);
    layer.send_response(t0 + ms(10), tx, answer(&req, 200));
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert_eq!(log.len(), 1);
    assert!(matches!(events[0].1, TuEvent::AckTimeout { .. }));

    let (mut layer, t0, tx, req) = start(Transport::Tcp);
    layer.send_response(t0, tx, answer(&req, 500));
    let (_, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::Timeout { .. }));
}
