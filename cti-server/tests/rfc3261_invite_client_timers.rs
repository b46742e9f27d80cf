//! RFC 3261 §17.1.1 (with RFC 6026 §8.4): the INVITE client transaction's timers A, B, D, M,
//! the ACK for non-2xx finals, and the reliable-transport rules, on a virtual clock.

mod sip_tx_common;

use std::time::{Duration, Instant};

use cti_server::sip::transaction::{TransactionLayer, TuEvent};
use cti_server::sip::{HeaderName, SipHeaders, SipMessage, Transport};
use sip_tx_common::*;

fn start(transport: Transport) -> (TransactionLayer, Instant, cti_server::sip::Request) {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let mut inv = invite(transport);
    inv.headers
        .push(HeaderName::Route, "<sip:proxy.example.com;lr>");
    layer.send_request(t0, inv.clone(), peer(transport, SERVER));
    (layer, t0, inv)
}

#[test]
fn timer_a_retransmits_at_doubling_intervals_and_timer_b_times_out_at_32s() {
    let (mut layer, t0, _) = start(Transport::Udp);
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert!(log.iter().all(|(_, t)| is_request(t, "INVITE")));
    assert_eq!(offsets(&log), secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]));
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::Timeout { .. }));
    assert!(matches!(events[1].1, TuEvent::Terminated { .. }));
    assert_eq!(layer.len(), 0);
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn provisional_stops_timers_a_and_b() {
    let (mut layer, t0, inv) = start(Transport::Udp);
    let mut log = Vec::new();
    let mut events = Vec::new();
    drain(&mut layer, t0, t0, &mut log, &mut events);
    layer.handle_timeout(t0 + ms(500));
    drain(&mut layer, t0, t0 + ms(500), &mut log, &mut events);
    let ringing = answer(&inv, 180);
    layer.handle_message(
        t0 + ms(700),
        SipMessage::Response(ringing.clone()),
        peer(Transport::Udp, SERVER),
    );
    // A retransmitted 180 is absorbed.
    layer.handle_message(
        t0 + ms(800),
        SipMessage::Response(ringing),
        peer(Transport::Udp, SERVER),
    );
    drain(&mut layer, t0, t0 + ms(800), &mut log, &mut events);
    assert_eq!(offsets(&log), secs(&[0.0, 0.5]));
    let responses: Vec<_> = events
        .iter()
        .filter(|(_, e)| matches!(e, TuEvent::Response { .. }))
        .collect();
    assert_eq!(responses.len(), 1);
    assert_eq!(layer.poll_timeout(), None, "no timer runs in Proceeding");
    assert_eq!(layer.len(), 1);
}

#[test]
fn non_2xx_final_is_acked_per_17_1_1_3_and_timer_d_absorbs_retransmissions() {
    let (mut layer, t0, inv) = start(Transport::Udp);
    let _ = layer.poll_transmit();
    let busy = answer(&inv, 486);
    let src = peer(Transport::Udp, SERVER);
    layer.handle_message(t0 + ms(100), SipMessage::Response(busy.clone()), src);
    let ack = layer.poll_transmit().expect("ACK sent");
    let SipMessage::Request(ack) = ack.message else {
        panic!("not a request")
    };
    assert_eq!(ack.method.as_str(), "ACK");
    assert_eq!(ack.uri, inv.uri);
    assert_eq!(ack.call_id(), inv.call_id());
    assert_eq!(
        ack.headers.get(&HeaderName::From),
        inv.headers.get(&HeaderName::From)
    );
    assert_eq!(ack.to_tag().as_deref(), Some("totag"));
    assert_eq!(ack.headers.get(&HeaderName::CSeq), Some("1 ACK"));
    assert_eq!(ack.vias().len(), 1);
    assert_eq!(ack.top_via(), inv.top_via());
    assert_eq!(
        ack.headers.get(&HeaderName::Route),
        Some("<sip:proxy.example.com;lr>")
    );
    assert!(
        matches!(layer.poll_event(), Some(TuEvent::Response { response, .. }) if response.code == 486)
    );

    // A retransmitted 486 gets the ACK again and is not passed up.
    layer.handle_message(t0 + ms(1100), SipMessage::Response(busy), src);
    assert!(is_request(
        &layer.poll_transmit().expect("ACK again"),
        "ACK"
    ));
    assert_eq!(layer.poll_event(), None);

    // Timer D: 32 s after the final.
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + ms(100) + Duration::from_secs(32))
    );
    layer.handle_timeout(t0 + ms(100) + Duration::from_secs(32));
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
    assert_eq!(layer.len(), 0);
}

#[test]
fn timer_m_keeps_accepted_passing_every_2xx_up() {
    let (mut layer, t0, inv) = start(Transport::Udp);
    let _ = layer.poll_transmit();
    let ok = answer(&inv, 200);
    let src = peer(Transport::Udp, SERVER);
    layer.handle_message(t0 + ms(100), SipMessage::Response(ok.clone()), src);
    layer.handle_message(t0 + ms(600), SipMessage::Response(ok), src);
    let mut n = 0;
    while let Some(e) = layer.poll_event() {
        assert!(matches!(e, TuEvent::Response { ref response, .. } if response.code == 200));
        n += 1;
    }
    assert_eq!(n, 2, "RFC 6026: every 2xx reaches the TU");
    assert_eq!(
        layer.poll_transmit(),
        None,
        "the TU ACKs a 2xx, not the transaction"
    );
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + ms(100) + Duration::from_secs(32))
    );
    layer.handle_timeout(t0 + ms(100) + Duration::from_secs(32));
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
}

#[test]
fn tcp_sets_no_timer_a_but_timer_b_still_fires() {
    let (mut layer, t0, _) = start(Transport::Tcp);
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert_eq!(offsets(&log), secs(&[0.0]));
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::Timeout { .. }));
}

#[test]
fn tcp_timer_d_is_zero() {
    let (mut layer, t0, inv) = start(Transport::Tcp);
    let _ = layer.poll_transmit();
    layer.handle_message(
        t0 + ms(100),
        SipMessage::Response(answer(&inv, 603)),
        peer(Transport::Tcp, SERVER),
    );
    assert!(is_request(&layer.poll_transmit().expect("ACK"), "ACK"));
    assert!(matches!(layer.poll_event(), Some(TuEvent::Response { .. })));
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
    assert_eq!(layer.len(), 0);
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn unmatched_response_is_stray() {
    let (mut layer, t0, _) = start(Transport::Udp);
    let other = request("INVITE", Transport::Udp, "z9hG4bKother", 7);
    layer.handle_message(
        t0,
        SipMessage::Response(answer(&other, 200)),
        peer(Transport::Udp, SERVER),
    );
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::StrayResponse { .. })
    ));
}

#[test]
fn a_2xx_after_timer_m_is_a_stray_response() {
    let (mut layer, t0, inv) = start(Transport::Udp);
    let ok = answer(&inv, 200);
    let src = peer(Transport::Udp, SERVER);
    layer.handle_message(t0 + ms(100), SipMessage::Response(ok.clone()), src);
    layer.handle_timeout(t0 + ms(100) + Duration::from_secs(32));
    while layer.poll_event().is_some() {}
    layer.handle_message(t0 + Duration::from_secs(40), SipMessage::Response(ok), src);
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::StrayResponse { .. })
    ));
}
