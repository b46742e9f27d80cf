//! Transaction-layer throughput: complete non-INVITE and INVITE server transactions per second
//! (request in, TU answer, response out, timers run to termination), and client transactions.
//! Messages are parsed once up front, so this measures the layer, not the parser.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cti_server::sip::message::{SipHeaders, SipMessage};
use cti_server::sip::transaction::{Peer, TimerConfig, TransactionLayer, TuEvent};
use cti_server::sip::{Request, Response};

fn options(n: u64) -> Request {
    let m = format!(
        "OPTIONS sip:cti@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;rport;branch=z9hG4bKbench{n}\r\nFrom: <sip:b@127.0.0.1>;tag=b{n}\r\nTo: <sip:cti@127.0.0.1>\r\nCall-ID: bench-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    match SipMessage::parse(m.as_bytes()).expect("valid") {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

fn invite(n: u64) -> Request {
    let mut r = options(n);
    r.method = cti_server::sip::Method::Invite;
    r.headers.set(cti_server::sip::HeaderName::CSeq, "1 INVITE");
    r
}

/// Runs one server transaction from request to termination.
fn serve(layer: &mut TransactionLayer, now: &mut Instant, req: Request, code: u16, src: Peer) {
    layer.handle_message(*now, SipMessage::Request(req), src);
    while let Some(ev) = layer.poll_event() {
        if let TuEvent::Request { tx, request, .. } = ev {
            let resp: Response = request.response(code, "OK", Some("t"));
            layer.send_response(*now, tx, resp);
        }
    }
    while layer.poll_transmit().is_some() {}
    // Let Timer J / H / L run out so the table does not grow.
    *now += Duration::from_secs(40);
    layer.handle_timeout(*now);
    while layer.poll_event().is_some() {}
    while layer.poll_transmit().is_some() {}
}

fn bench(c: &mut Criterion) {
    let src = Peer::udp("127.0.0.1:5099".parse::<SocketAddr>().unwrap());
    let mut g = c.benchmark_group("transactions");
    g.throughput(Throughput::Elements(1));

    let reqs: Vec<Request> = (0..1024).map(options).collect();
    g.bench_function("server non-INVITE (OPTIONS -> 200)", |b| {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let mut now = Instant::now();
        let mut i = 0;
        b.iter(|| {
            serve(&mut layer, &mut now, reqs[i % reqs.len()].clone(), 200, src);
            i += 1;
        });
    });

    let invites: Vec<Request> = (0..1024).map(invite).collect();
    g.bench_function("server INVITE (INVITE -> 486)", |b| {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let mut now = Instant::now();
        let mut i = 0;
        b.iter(|| {
            serve(
                &mut layer,
                &mut now,
                invites[i % invites.len()].clone(),
                486,
                src,
            );
            i += 1;
        });
    });

    g.bench_function("client non-INVITE (send, 200 back)", |b| {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let mut now = Instant::now();
        let mut i = 0;
        b.iter(|| {
            let req = reqs[i % reqs.len()].clone();
            i += 1;
            let resp = req.response(200, "OK", Some("t"));
            layer.send_request(now, req, src);
            while layer.poll_transmit().is_some() {}
            layer.handle_message(now, SipMessage::Response(resp), src);
            while layer.poll_event().is_some() {}
            now += Duration::from_secs(40);
            layer.handle_timeout(now);
            while layer.poll_event().is_some() {}
            debug_assert!(layer.is_empty());
        });
    });
    g.finish();
    let _ = reqs[0].cseq();
}

criterion_group!(benches, bench);
criterion_main!(benches);
