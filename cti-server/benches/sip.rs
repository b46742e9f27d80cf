//! SIP parser/printer throughput: `cargo bench -p cti-server --bench sip`.
//!
//! Every benchmark handles one message per iteration (`Throughput::Elements(1)`), so criterion's
//! "thrpt" line is messages per second on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cti_server::sip::message::{Frame, SipMessage, frame};

/// An INVITE as a carrier trunk sends it: 13 header fields, two Vias, Record-Route, SDP body.
const SDP: &str = "v=0\r\n\
o=- 3867584729 3867584729 IN IP4 203.0.113.10\r\n\
s=-\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:+33123456789@cti.example.com:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-524287-1---4f8a1c2d9e3b;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;received=198.51.100.7;branch=z9hG4bK77ef1a\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:203.0.113.10:5060;lr;ftag=as5f3b7c1d>\r\n\
From: \"+33 6 12 34 56 78\" <sip:+33612345678@carrier.example.net;user=phone>;tag=as5f3b7c1d\r\n\
To: <sip:+33123456789@cti.example.com;user=phone>\r\n\
Call-ID: 4f8a1c2d9e3b7a6f5e4d3c2b1a098765@203.0.113.10\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+33612345678@203.0.113.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: CarrierSBC 4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKa8c3e1f0;received=192.0.2.20;rport=5060\r\n\
From: <sip:2001@cti.example.com>;tag=8f2c1e\r\n\
To: <sip:+33612345678@carrier.example.net>;tag=as1b2c3d\r\n\
Call-ID: 7d1e2f3a4b5c6d7e@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+33612345678@203.0.113.10:5060>\r\n\
Record-Route: <sip:203.0.113.10:5060;lr>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n\
Supported: replaces, timer\r\n\
Server: CarrierSBC 4.2\r\n\
Content-Length: 0\r\n\r\n";

fn bench(c: &mut Criterion) {
    let invite = invite();
    let invite = invite.as_bytes();
    let parsed = SipMessage::parse(invite).expect("bench INVITE parses");
    assert!(SipMessage::parse(OK_200.as_bytes()).is_ok());
    // A stream buffer holding an INVITE followed by the start of the next message.
    let mut stream = invite.to_vec();
    stream.extend_from_slice(&OK_200.as_bytes()[..40]);
    assert_eq!(frame(&stream), Ok(Frame::Message(invite.len())));

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_invite", |b| {
        b.iter(|| SipMessage::parse(black_box(invite)).unwrap())
    });
    g.bench_function("print_invite", |b| b.iter(|| black_box(&parsed).to_bytes()));
    g.bench_function("parse_print_invite", |b| {
        b.iter(|| SipMessage::parse(black_box(invite)).unwrap().to_bytes())
    });
    g.bench_function("parse_200_ok", |b| {
        b.iter(|| SipMessage::parse(black_box(OK_200.as_bytes())).unwrap())
    });
    g.bench_function("frame_stream", |b| b.iter(|| frame(black_box(&stream))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
