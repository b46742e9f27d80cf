//! Property tests of the SIP message facade (parse / print / frame).
//!
//! (a) `parse` never panics on arbitrary bytes or on mutated valid messages, and whatever it
//!     accepts prints to bytes that parse back to the same message (print is a fixed point);
//! (b) `frame` never panics and never claims more bytes than the buffer holds;
//! (c) generated well-formed messages parse back to what was generated.
//!
//! Seeds: the RFC 4475 files (from `RFC4475_DIR`, default `/work/shared/conformance/rfc4475`,
//! skipped when absent) and a few typical messages. Case counts keep a debug run short.

use std::sync::OnceLock;

use cti_server::sip::grammar::Uri;
use cti_server::sip::message::{Frame, HeaderName, Response, SipHeaders, SipMessage, frame};
use cti_server::sip::types::Method;
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    // PROPTEST_CASES overrides the count for a longer soak run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Do not write regression files into the source tree; failures print their input.
        failure_persistence: None,
        ..Config::default()
    }
}

const INVITE: &str = "INVITE sip:+33123456789@cti.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-524287-1;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.7;received=198.51.100.7;branch=z9hG4bK77ef1a\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:203.0.113.10;lr>\r\n\
From: \"Caller \\\"One\\\"\" <sip:+33612345678@carrier.example.net>;tag=as5f3b7c1d\r\n\
To: <sip:+33123456789@cti.example.com>\r\n\
Call-ID: 4f8a1c2d9e3b@203.0.113.10\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+33612345678@203.0.113.10:5060;transport=udp>\r\n\
Supported: replaces, timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 33\r\n\r\n\
v=0\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n";

const REGISTER: &str = "REGISTER sip:cti.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bKreg1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:2001@cti.example.com>;tag=r1\r\n\
To: <sip:2001@cti.example.com>\r\n\
Call-ID: reg-1@192.0.2.20\r\n\
CSeq: 7 REGISTER\r\n\
Contact: <sip:2001@192.0.2.20:5060;transport=tcp>;expires=3600\r\n\
Authorization: Digest username=\"2001\", realm=\"cti\", nonce=\"abc\", uri=\"sip:cti.example.com\", response=\"0123456789abcdef\"\r\n\
Expires: 3600\r\n\
l: 0\r\n\r\n";

const OK_200: &str = "SIP/2.0 200 OK\r\n\
v: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKa8c3;received=192.0.2.20;rport=5060\r\n\
f: <sip:2001@cti.example.com>;tag=8f2c1e\r\n\
t: <sip:+33612345678@carrier.example.net>;tag=as1b\r\n\
i: 7d1e2f3a@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:+33612345678@203.0.113.10>\r\n\
Content-Length: 0\r\n\r\n";

fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut v = vec![
            INVITE.as_bytes().to_vec(),
            REGISTER.as_bytes().to_vec(),
            OK_200.as_bytes().to_vec(),
        ];
        let dir = std::env::var("RFC4475_DIR")
            .unwrap_or_else(|_| "/work/shared/conformance/rfc4475".to_string());
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut files: Vec<_> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "dat"))
                .collect();
            files.sort();
            v.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
        }
        for s in &v[..3] {
            assert!(SipMessage::parse(s).is_ok(), "seed must parse");
        }
        v
    })
}

/// The parse / print contract on any input; returns whether the input parsed.
fn check_parse(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let m = match SipMessage::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            // Building the answer to a refused request must not panic either.
            if let Some(raw) = &e.raw
                && let Some(resp) = Response::for_raw_request(raw, 400, "Bad Request")
            {
                let _ = resp.to_bytes();
            }
            let _ = e.to_string();
            return Ok(false);
        }
    };
    let printed = m.to_bytes();
    let again = SipMessage::parse(&printed);
    prop_assert!(
        again.is_ok(),
        "printed message does not parse: {:?}\n{}",
        again.as_ref().err().map(|e| &e.kind),
        String::from_utf8_lossy(&printed)
    );
    let again = again.unwrap();
    prop_assert_eq!(&again, &m);
    prop_assert_eq!(again.to_bytes(), printed.clone());
    // A printed message frames exactly on a stream and parses the same there.
    prop_assert_eq!(frame(&printed), Ok(Frame::Message(printed.len())));
    prop_assert_eq!(SipMessage::parse_framed(&printed).ok(), Some(m.clone()));
    // The typed accessors must not panic on anything the parser accepted.
    let h = m.headers();
    let _ = (h.get(&HeaderName::Via), h.count(&HeaderName::Contact));
    match &m {
        SipMessage::Request(r) => {
            prop_assert!(r.cseq().is_some() && r.call_id().is_some());
            prop_assert!(r.from_header().is_some() && r.to_header().is_some());
            prop_assert!(r.top_via().is_some());
            let _ = (r.contacts(), r.expires(), r.max_forwards(), r.vias());
            let _ = r.tokens(&HeaderName::Require);
            let resp = r.response(200, "OK", Some("tag1"));
            prop_assert!(SipMessage::parse(&resp.to_bytes()).is_ok());
        }
        SipMessage::Response(r) => {
            prop_assert!(r.cseq().is_some() && r.top_via().is_some());
            let _ = (r.contacts(), r.vias(), r.to_tag());
        }
    }
    Ok(true)
}

/// The framing contract: never past the buffer, and a framed message parses without panic.
fn check_frame(bytes: &[u8]) -> Result<(), TestCaseError> {
    match frame(bytes) {
        Ok(Frame::Message(n)) => {
            prop_assert!(n > 0 && n <= bytes.len());
            if let Ok(m) = SipMessage::parse_framed(&bytes[..n]) {
                let printed = m.to_bytes();
                prop_assert_eq!(SipMessage::parse_framed(&printed).ok(), Some(m));
            }
        }
        Ok(Frame::Ping(n) | Frame::Skip(n)) => prop_assert!(n > 0 && n <= bytes.len()),
        Ok(Frame::Incomplete) | Err(_) => {}
    }
    Ok(())
}

// ------------------------------------------------------------------------ mutations

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    DupLine(usize),
    DropLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"\r\n \t:;,<>\"\\@%?=/[].0123456789".to_vec()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::DupLine),
        any::<usize>().prop_map(Mutation::DropLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Line spans `[start, end)` including the '\n'.
fn line_spans(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            spans.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < buf.len() {
        spans.push((start, buf.len()));
    }
    spans
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let len = buf.len();
    match *m {
        Mutation::Flip(i, b) if len > 0 => buf[i % len] = b,
        Mutation::Insert(i, b) => buf.insert(i % (len + 1), b),
        Mutation::Delete(i) if len > 0 => {
            buf.remove(i % len);
        }
        Mutation::Truncate(i) => buf.truncate(i % (len + 1)),
        Mutation::DupLine(i) | Mutation::DropLine(i) | Mutation::SwapLines(i, _) => {
            let spans = line_spans(buf);
            if spans.is_empty() {
                return;
            }
            let (s, e) = spans[i % spans.len()];
            match *m {
                Mutation::DupLine(_) => {
                    let line = buf[s..e].to_vec();
                    buf.splice(e..e, line);
                }
                Mutation::DropLine(_) => {
                    buf.drain(s..e);
                }
                Mutation::SwapLines(_, j) => {
                    let (s2, e2) = spans[j % spans.len()];
                    let (a, b) = if s <= s2 {
                        ((s, e), (s2, e2))
                    } else {
                        ((s2, e2), (s, e))
                    };
                    if a.1 <= b.0 {
                        let first = buf[a.0..a.1].to_vec();
                        let second = buf[b.0..b.1].to_vec();
                        buf.splice(b.0..b.1, first);
                        buf.splice(a.0..a.1, second);
                    }
                }
                _ => unreachable!(),
            }
        }
        _ => {}
    }
}

fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    (0..seeds().len(), prop::collection::vec(mutation(), 1..6)).prop_map(|(seed, muts)| {
        let mut buf = seeds()[seed].clone();
        for m in &muts {
            apply(&mut buf, m);
        }
        buf
    })
}

/// Pieces of SIP text that random concatenation turns into near-messages.
const FRAGMENTS: &[&str] = &[
    "INVITE ",
    "SIP/2.0",
    " SIP/2.0\r\n",
    "SIP/2.0 200 OK\r\n",
    "Via: ",
    "SIP/2.0/UDP h",
    ";branch=z9hG4bK1",
    "From: ",
    "To: ",
    "CSeq: 1 INVITE",
    "Call-ID: c",
    "Content-Length: ",
    "l: ",
    "v: ",
    "f: ",
    "t: ",
    "i: ",
    ":",
    ";",
    ",",
    "<",
    ">",
    "\"",
    "\\",
    "@",
    "sip:",
    "sips:",
    "a@b",
    "%00",
    "%4",
    "[::1]",
    ":5060",
    " ",
    "\t",
    "\r\n",
    "\n",
    "\r\n\r\n",
    "\r\n ",
    "0",
    "9",
    "x",
    "=",
    "?",
    "é",
    "€",
    "tag=",
    "1",
];

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_parse(&bytes)?;
        check_frame(&bytes)?;
    }

    #[test]
    fn parse_never_panics_on_sip_like_text(
        text in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..120)
            .prop_map(|f| f.concat()),
    ) {
        check_parse(text.as_bytes())?;
        check_frame(text.as_bytes())?;
    }

    #[test]
    fn mutated_messages_round_trip(buf in mutated_message()) {
        check_parse(&buf)?;
        check_frame(&buf)?;
    }

    #[test]
    fn frame_stays_in_bounds_on_streams(
        parts in prop::collection::vec(mutated_message(), 1..4),
        cut in any::<usize>(),
    ) {
        let stream: Vec<u8> = parts.concat();
        // Every prefix the transport might hold, and a walk over the whole stream.
        let cut = cut % (stream.len() + 1);
        check_frame(&stream[..cut])?;
        let mut pos = 0;
        let mut steps = 0;
        while pos < stream.len() && steps < 64 {
            steps += 1;
            match frame(&stream[pos..]) {
                Ok(Frame::Message(n) | Frame::Ping(n) | Frame::Skip(n)) => {
                    prop_assert!(n > 0 && pos + n <= stream.len());
                    if let Ok(m) = SipMessage::parse_framed(&stream[pos..pos + n]) {
                        check_parse(&m.to_bytes())?;
                    }
                    pos += n;
                }
                Ok(Frame::Incomplete) | Err(_) => break,
            }
        }
    }
}

// ---------------------------------------------------------- generated valid messages

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,9}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z][a-z0-9]{0,6}){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn uri_param() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9-]{0,7}",
        prop::option::of("[a-zA-Z0-9._~-]{1,8}|%[0-9A-F]{2}"),
    )
        .prop_map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}"),
            None => format!(";{n}"),
        })
}

/// A sip/sips URI; `with_headers` adds `?h=v` (not allowed in a Request-URI).
fn sip_uri(with_headers: bool) -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::option::of("[a-zA-Z0-9+._~-]{1,10}(%[0-9A-F]{2})?"),
        prop::option::of("[a-zA-Z0-9]{1,6}"),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec(uri_param(), 0..3),
        prop::option::of("[a-zA-Z]{1,6}=[a-zA-Z0-9]{1,6}"),
    )
        .prop_map(move |(secure, user, pass, host, port, params, hdrs)| {
            let mut s = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = &user {
                s.push_str(u);
                if let Some(p) = &pass {
                    s.push(':');
                    s.push_str(p);
                }
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            s.push_str(&params.concat());
            if with_headers && let Some(h) = hdrs {
                s.push('?');
                s.push_str(&h);
            }
            s
        })
}

fn any_uri(with_headers: bool) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => sip_uri(with_headers),
        1 => "tel:\\+[0-9]{4,12}",
        1 => "[a-z][a-z0-9+.-]{0,6}:[a-zA-Z0-9/._~-]{1,12}"
            .prop_filter("not sip", |u| !u.starts_with("sip:") && !u.starts_with("sips:")),
    ]
}

/// A display name: tokens, or a quoted string with escaped quotes and backslashes.
fn display_name() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        prop::collection::vec(token(), 1..3).prop_map(|w| w.join(" ")),
        "[a-zA-Z0-9 ,<>@;:\"\\\\é]{0,12}".prop_map(|s| {
            let mut q = String::from("\"");
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            q
        }),
    ])
}

#[derive(Debug, Clone)]
struct GenNameAddr {
    display: Option<String>,
    uri: String,
    params: Vec<String>,
}

impl GenNameAddr {
    fn render(&self) -> String {
        match &self.display {
            Some(d) => format!("{d} <{}>{}", self.uri, self.params.concat()),
            None => format!("<{}>{}", self.uri, self.params.concat()),
        }
    }
}

fn name_addr() -> impl Strategy<Value = GenNameAddr> {
    (
        display_name(),
        any_uri(true),
        prop::collection::vec(uri_param(), 0..3),
    )
        .prop_map(|(display, uri, params)| GenNameAddr {
            display,
            uri,
            params,
        })
}

fn via_value() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(vec!["UDP", "TCP", "TLS", "SCTP", "WS"]),
        host(),
        prop::option::of(1u16..),
        "[a-zA-Z0-9.-]{1,12}",
        any::<bool>(),
    )
        .prop_map(|(t, h, port, branch, rport)| {
            let branch = format!("z9hG4bK{branch}");
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let rport = if rport { ";rport" } else { "" };
            (
                format!("SIP/2.0/{t} {h}{port};branch={branch}{rport}"),
                branch,
            )
        })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "INFO",
            "REFER",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "MESSAGE",
            "PUBLISH",
        ])
        .prop_map(str::to_string),
        token(),
    ]
}

#[derive(Debug, Clone)]
struct GenMessage {
    /// `None` for a request, the status code and reason for a response.
    status: Option<(u16, String)>,
    method: String,
    ruri: String,
    vias: Vec<Vec<(String, String)>>,
    from: GenNameAddr,
    to: GenNameAddr,
    call_id: String,
    seq: u32,
    max_forwards: u8,
    contacts: Vec<GenNameAddr>,
    subject: Option<String>,
    body: Vec<u8>,
    compact: bool,
}

fn gen_message() -> impl Strategy<Value = GenMessage> {
    (
        prop::option::of((100u16..700, "[a-zA-Z][a-zA-Z0-9 é-]{0,15}")),
        method(),
        any_uri(false),
        prop::collection::vec(prop::collection::vec(via_value(), 1..3), 1..3),
        (name_addr(), name_addr()),
        "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,10})?",
        (0u32..(1 << 31), any::<u8>()),
        prop::collection::vec(name_addr(), 0..3),
        prop::option::of("[a-zA-Z0-9 ,;:é]{0,20}"),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
        .prop_map(
            |(
                status,
                method,
                ruri,
                vias,
                (from, to),
                call_id,
                (seq, mf),
                contacts,
                subject,
                body,
                compact,
            )| {
                GenMessage {
                    status,
                    method,
                    ruri,
                    vias,
                    from,
                    to,
                    call_id,
                    seq,
                    max_forwards: mf,
                    contacts,
                    subject,
                    body,
                    compact,
                }
            },
        )
}

impl GenMessage {
    fn render(&self) -> Vec<u8> {
        let mut s = match &self.status {
            Some((code, reason)) => format!("SIP/2.0 {code} {reason}\r\n"),
            None => format!("{} {} SIP/2.0\r\n", self.method, self.ruri),
        };
        let name =
            |full: &'static str, short: &'static str| if self.compact { short } else { full };
        for line in &self.vias {
            let values: Vec<&str> = line.iter().map(|(v, _)| v.as_str()).collect();
            s.push_str(&format!("{}: {}\r\n", name("Via", "v"), values.join(", ")));
        }
        s.push_str(&format!(
            "{}: {}\r\n",
            name("From", "f"),
            self.from.render()
        ));
        s.push_str(&format!("{}: {}\r\n", name("To", "t"), self.to.render()));
        s.push_str(&format!("{}: {}\r\n", name("Call-ID", "i"), self.call_id));
        s.push_str(&format!("CSeq: {} {}\r\n", self.seq, self.method));
        if self.status.is_none() {
            s.push_str(&format!("Max-Forwards: {}\r\n", self.max_forwards));
        }
        if !self.contacts.is_empty() {
            let c: Vec<String> = self.contacts.iter().map(GenNameAddr::render).collect();
            s.push_str(&format!("{}: {}\r\n", name("Contact", "m"), c.join(", ")));
        }
        if let Some(subj) = &self.subject {
            s.push_str(&format!("{}: {subj}\r\n", name("Subject", "s")));
        }
        s.push_str(&format!(
            "{}: {}\r\n\r\n",
            name("Content-Length", "l"),
            self.body.len()
        ));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn generated_messages_parse_back(g in gen_message()) {
        let bytes = g.render();
        let m = SipMessage::parse(&bytes);
        prop_assert!(
            m.is_ok(),
            "{:?}\n{}",
            m.as_ref().err().map(|e| &e.kind),
            String::from_utf8_lossy(&bytes)
        );
        let m = m.unwrap();
        prop_assert!(check_parse(&bytes)?);
        prop_assert_eq!(frame(&bytes), Ok(Frame::Message(bytes.len())));
        prop_assert_eq!(SipMessage::parse_framed(&bytes).ok(), Some(m.clone()));

        let h = m.headers();
        let vias = match &m {
            SipMessage::Request(r) => {
                prop_assert!(g.status.is_none());
                prop_assert_eq!(r.method.as_str(), g.method.as_str());
                prop_assert_eq!(r.uri.to_string(), g.ruri.clone());
                prop_assert_eq!(r.max_forwards(), Some(g.max_forwards));
                prop_assert_eq!(r.cseq().unwrap().method, Method::parse(&g.method).unwrap());
                r.vias()
            }
            SipMessage::Response(r) => {
                let (code, reason) = g.status.clone().unwrap();
                prop_assert_eq!(r.code, code);
                prop_assert_eq!(&r.reason, &reason);
                r.vias()
            }
        };
        let branches: Vec<&str> = vias.iter().filter_map(|v| v.branch()).collect();
        let expected: Vec<&str> = g.vias.iter().flatten().map(|(_, b)| b.as_str()).collect();
        prop_assert_eq!(branches, expected);
        prop_assert_eq!(h.get(&HeaderName::CallId), Some(g.call_id.as_str()));
        prop_assert_eq!(
            h.get(&HeaderName::CSeq).map(str::to_string),
            Some(format!("{} {}", g.seq, g.method))
        );

        let (from, to, contacts) = match &m {
            SipMessage::Request(r) => (r.from_header(), r.to_header(), r.contacts()),
            SipMessage::Response(r) => (r.from_header(), r.to_header(), r.contacts()),
        };
        for (got, want) in [(from.unwrap(), &g.from), (to.unwrap(), &g.to)] {
            prop_assert_eq!(got.display, want.display.clone());
            prop_assert_eq!(got.uri.to_string(), want.uri.to_ascii_lowercase_scheme());
            prop_assert_eq!(got.params.to_string(), want.params.concat());
        }
        prop_assert_eq!(contacts.len(), g.contacts.len());
        for (got, want) in contacts.iter().zip(&g.contacts) {
            let got = got.as_ref().unwrap();
            prop_assert_eq!(&got.display, &want.display);
            prop_assert_eq!(got.uri.to_string(), want.uri.to_ascii_lowercase_scheme());
        }
        prop_assert_eq!(h.get(&HeaderName::Subject), g.subject.as_deref().map(str::trim));
        let body: &[u8] = match &m {
            SipMessage::Request(r) => &r.body,
            SipMessage::Response(r) => &r.body,
        };
        prop_assert_eq!(body, &g.body[..]);

        // Two printed messages back to back on a stream frame as two.
        let printed = m.to_bytes();
        let stream = [printed.clone(), printed.clone()].concat();
        prop_assert_eq!(frame(&stream), Ok(Frame::Message(printed.len())));
        prop_assert_eq!(frame(&stream[printed.len()..]), Ok(Frame::Message(printed.len())));
    }
}

trait LowerScheme {
    fn to_ascii_lowercase_scheme(&self) -> String;
}

impl LowerScheme for String {
    /// The parser lower-cases URI schemes (they compare case-insensitively).
    fn to_ascii_lowercase_scheme(&self) -> String {
        match self.split_once(':') {
            Some((scheme, rest)) => format!("{}:{rest}", scheme.to_ascii_lowercase()),
            None => self.clone(),
        }
    }
}

#[test]
fn unknown_scheme_uri_is_opaque() {
    let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
    assert!(matches!(u, Uri::Other { .. }));
    assert_eq!(u.to_string(), "nobodyknowsthisscheme:totallyopaquecontent");
}
