//! RFC 3261 §17.1.2: the non-INVITE client transaction's timers E, F and K on a virtual clock.

mod sip_tx_common;

use std::time::{Duration, Instant};

use cti_server::sip::transaction::{TransactionLayer, TuEvent};
use cti_server::sip::{Request, SipMessage, Transport};
use sip_tx_common::*;

fn start(transport: Transport) -> (TransactionLayer, Instant, Request) {
    let mut layer = TransactionLayer::new(Default::default());
    let t0 = Instant::now();
    let req = request("OPTIONS", transport, "z9hG4bKopt1", 5);
    layer.send_request(t0, req.clone(), peer(transport, SERVER));
    (layer, t0, req)
}

#[test]
fn timer_e_doubles_up_to_t2_and_timer_f_times_out_at_32s() {
    let (mut layer, t0, _) = start(Transport::Udp);
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert_eq!(
        offsets(&log),
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    );
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::Timeout { .. }));
    assert!(matches!(events[1].1, TuEvent::Terminated { .. }));
    assert_eq!(layer.len(), 0);
}

#[test]
fn timer_e_is_t2_after_a_provisional() {
    let (mut layer, t0, req) = start(Transport::Udp);
    let (mut log, mut events) = (Vec::new(), Vec::new());
    drain(&mut layer, t0, t0, &mut log, &mut events);
    layer.handle_timeout(t0 + ms(500));
    drain(&mut layer, t0, t0 + ms(500), &mut log, &mut events);
    layer.handle_message(
        t0 + ms(700),
        SipMessage::Response(answer(&req, 100)),
        peer(Transport::Udp, SERVER),
    );
    drain(&mut layer, t0, t0 + ms(700), &mut log, &mut events);
    let (more, later) = run_alone(&mut layer, t0, Duration::from_secs(64));
    log.extend(more);
    events.extend(later);
    // E set to 1 s at 0.5 s fires at 1.5 s in Proceeding, then every T2.
    assert_eq!(
        offsets(&log),
        secs(&[0.0, 0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5])
    );
    assert!(matches!(events[0].1, TuEvent::Response { .. }));
    assert_eq!(events[1].0, Duration::from_secs(32));
    assert!(matches!(events[1].1, TuEvent::Timeout { .. }));
}

#[test]
fn timer_k_absorbs_final_retransmissions_for_t4() {
    let (mut layer, t0, req) = start(Transport::Udp);
    let _ = layer.poll_transmit();
    let ok = answer(&req, 200);
    let src = peer(Transport::Udp, SERVER);
    layer.handle_message(t0 + ms(100), SipMessage::Response(ok.clone()), src);
    layer.handle_message(t0 + ms(900), SipMessage::Response(ok), src);
    assert!(matches!(layer.poll_event(), Some(TuEvent::Response { .. })));
    assert_eq!(
        layer.poll_event(),
        None,
        "the retransmitted final is absorbed"
    );
    assert_eq!(layer.poll_transmit(), None);
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(5100)));
    layer.handle_timeout(t0 + ms(5100));
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
    assert_eq!(layer.len(), 0);
}

#[test]
fn tcp_has_no_timer_e_and_zero_timer_k() {
    let (mut layer, t0, req) = start(Transport::Tcp);
    let (log, events) = run_alone(&mut layer, t0, Duration::from_secs(10));
    assert_eq!(offsets(&log), secs(&[0.0]));
    assert!(events.is_empty());
    layer.handle_message(
        t0 + Duration::from_secs(10),
        SipMessage::Response(answer(&req, 404)),
        peer(Transport::Tcp, SERVER),
    );
    assert!(matches!(layer.poll_event(), Some(TuEvent::Response { .. })));
    assert!(matches!(
        layer.poll_event(),
        Some(TuEvent::Terminated { .. })
    ));
    assert_eq!(layer.len(), 0);
}

#[test]
fn tcp_timer_f_still_times_out() {
    let (mut layer, t0, _) = start(Transport::Tcp);
    let (_, events) = run_alone(&mut layer, t0, Duration::from_secs(64));
    assert_eq!(events[0].0, Duration::from_secs(32));
    assert!(matches!(events[0].1, TuEvent::Timeout { .. }));
}
