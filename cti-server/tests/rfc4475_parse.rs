//! RFC 4475 torture messages against the SIP message facade: one test per message.
//!
//! Each file is parsed with datagram semantics (`SipMessage::parse`). Valid messages must parse,
//! re-print and re-parse to an equal message; invalid ones must fail with the specific
//! `ParseErrorKind`, and an invalid *request* must still leave enough of its head behind for
//! the 400 (505 for `badvers`) the RFC asks for. The last tests frame every file as a TCP
//! stream with `message::frame`.
//!
//! The files live in `/work/shared/conformance/rfc4475` (override with `RFC4475_DIR`).

use std::path::PathBuf;

use cti_server::sip::grammar::{NameAddr, Uri};
use cti_server::sip::message::{
    Frame, FrameError, HeaderName, ParseError, ParseErrorKind, Request, Response, SipHeaders,
    SipMessage, frame,
};
use cti_server::sip::types::Method;

fn dir() -> PathBuf {
    std::env::var_os("RFC4475_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/conformance/rfc4475"))
}

fn load(name: &str) -> Vec<u8> {
    let p = dir().join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file name (without `.dat`), sorted.
fn all_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .expect("RFC 4475 directory")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "dat").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    v.sort();
    v
}

/// Parses a valid file and checks print → parse → print is stable.
fn valid(name: &str) -> SipMessage {
    let bytes = load(name);
    let m = SipMessage::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e} ({e:?})"));
    let printed = m.to_bytes();
    let again = SipMessage::parse(&printed)
        .unwrap_or_else(|e| panic!("{name}: re-parse of printed message failed: {e:?}"));
    assert_eq!(again, m, "{name}: re-parsed message differs");
    assert_eq!(
        again.to_bytes(),
        printed,
        "{name}: print is not a fixed point"
    );
    // A printed message is always framed by its Content-Length.
    assert_eq!(frame(&printed), Ok(Frame::Message(printed.len())), "{name}");
    assert_eq!(SipMessage::parse_framed(&printed).unwrap(), m, "{name}");
    m
}

fn valid_request(name: &str) -> Request {
    match valid(name) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("{name}: expected a request"),
    }
}

fn valid_response(name: &str) -> Response {
    match valid(name) {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("{name}: expected a response"),
    }
}

fn invalid(name: &str) -> ParseError {
    match SipMessage::parse(&load(name)) {
        Ok(m) => panic!("{name}: should be rejected, parsed as {m:?}"),
        Err(e) => e,
    }
}

fn assert_header_error(e: &ParseError, header: &str) {
    match &e.kind {
        ParseErrorKind::Header { name, .. } => assert_eq!(*name, header, "{e:?}"),
        other => panic!("expected a malformed {header} header, got {other:?}"),
    }
}

/// The answer the server can still send to a request that failed validation: it must echo the
/// mandatory headers that were readable and itself parse.
fn answer(e: &ParseError, code: u16) -> Response {
    let raw = e
        .raw
        .as_ref()
        .unwrap_or_else(|| panic!("no raw head kept for {:?}", e.kind));
    assert!(raw.is_request());
    let resp = Response::for_raw_request(raw, code, "Bad Request")
        .unwrap_or_else(|| panic!("no {code} possible for {:?}", e.kind));
    assert_eq!(resp.code, code);
    assert!(resp.headers.count(&HeaderName::Via) >= 1);
    assert_eq!(
        resp.headers.get(&HeaderName::Via),
        raw.headers.get(&HeaderName::Via)
    );
    resp
}

/// `answer` when the echoed headers are all well formed: the response must parse too.
fn answer_parses(e: &ParseError, code: u16) -> Response {
    let resp = answer(e, code);
    assert_eq!(resp.headers.count(&HeaderName::From), 1);
    assert_eq!(resp.headers.count(&HeaderName::CSeq), 1);
    let again = SipMessage::parse(&resp.to_bytes()).expect("our 4xx/5xx parses");
    assert_eq!(again, SipMessage::Response(resp.clone()));
    resp
}

fn sip_user(u: &Uri) -> String {
    u.as_sip().expect("sip URI").user_unescaped().expect("user")
}

// ---------------------------------------------------------------- §3.1.1 valid messages

#[test]
fn wsinv() {
    // §3.1.1.1: folding, odd whitespace, mixed-case names, leading zeros.
    let r = valid_request("wsinv");
    assert_eq!(r.method, Method::Invite);
    let u = r.uri.as_sip().unwrap();
    assert_eq!(u.host, "chair-dnrc.example.com");
    assert!(u.params.contains("unknownparam"));
    assert_eq!(r.max_forwards(), Some(68));
    let cseq = r.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(r.to_tag().as_deref(), Some("1918181833n"));
    assert_eq!(r.from_tag().as_deref(), Some("98asjd8"));
    assert_eq!(
        r.from_header().unwrap().display.as_deref(),
        Some(r#""J Rosenberg \\\"""#)
    );
    let vias = r.vias();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host, "192.168.255.111");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(r.headers.get(&HeaderName::Subject), Some(""));
    assert_eq!(
        r.headers.get(&HeaderName::Other("newfangledheader".into())),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers
            .get(&HeaderName::Other("UnknownHeaderWithUnusualValue".into())),
        Some(";;,,;;,;")
    );
    let contacts = r.contacts();
    assert_eq!(contacts.len(), 1);
    let c = contacts[0].as_ref().unwrap();
    assert_eq!(c.params.value("newparam"), Some("newvalue"));
    assert!(c.params.contains("secondparam"));
    assert_eq!(c.params.value("q"), Some("0.33"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn intmeth() {
    // §3.1.1.2: unusual method token, URI user/password, escaped control chars in quotes.
    let r = valid_request("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(r.method, Method::Other(method.into()));
    assert_eq!(r.cseq().unwrap().method, Method::Other(method.into()));
    let u = r.uri.as_sip().unwrap();
    assert_eq!(
        u.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host, "example.com");
    assert_eq!(
        r.call_id().unwrap().as_str(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    let from = r.from_header().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert!(r.to_header().unwrap().display.unwrap().contains("NUL:\\\0"));
    assert_eq!(r.max_forwards(), Some(255));
    assert!(r.body.is_empty());
}

#[test]
fn esc01() {
    // §3.1.1.3: escapes are kept as received and compared unescaped.
    let r = valid_request("esc01");
    assert_eq!(sip_user(&r.uri), "sips:user@example.com");
    assert_eq!(
        r.uri.as_sip().unwrap().user.as_deref(),
        Some("sips%3Auser%40example.com")
    );
    assert_eq!(sip_user(&r.to_header().unwrap().uri), "user");
    assert_eq!(sip_user(&r.from_header().unwrap().uri), "I have spaces");
    let contact = r.contacts().remove(0).unwrap();
    assert_eq!(sip_user(&contact.uri), "caller");
    let cu = contact.uri.as_sip().unwrap();
    assert!(cu.params.contains("%6C%72"));
    assert_eq!(cu.params.value("n%61me"), Some("v%61lue%25%34%31"));
    assert_eq!(r.content_type(), Some("application/sdp"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn escnull() {
    // §3.1.1.4: %00 in a user part is legal and must not truncate anything.
    let r = valid_request("escnull");
    assert_eq!(sip_user(&r.to_header().unwrap().uri), "null-\0-null");
    assert_eq!(sip_user(&r.from_header().unwrap().uri), "null-\0-null");
    let users: Vec<String> = r
        .contacts()
        .into_iter()
        .map(|c| sip_user(&c.unwrap().uri))
        .collect();
    assert_eq!(users, ["\0", "\0\0"]);
}

#[test]
fn esc02() {
    // §3.1.1.5: escaped method and header names are NOT unescaped: RE%47IST%45R is not REGISTER.
    let r = valid_request("esc02");
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(r.cseq().unwrap().method, r.method);
    assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
    assert_eq!(r.contacts().len(), 2);
    assert_eq!(
        r.headers.get(&HeaderName::Other("c%6fntact".into())),
        Some("<sip:alias2@host2.example.com>")
    );
    assert_eq!(r.to_header().unwrap().display.as_deref(), Some("\"%Z%45\""));
}

#[test]
fn lwsdisp() {
    // §3.1.1.6: no LWS between the display name and '<'.
    let r = valid_request("lwsdisp");
    let from = r.from_header().unwrap();
    assert_eq!(from.display.as_deref(), Some("caller"));
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn longreq() {
    // §3.1.1.7: long values, 34 Via values under many spellings of the name.
    let r = valid_request("longreq");
    let vias = r.vias();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, "sip33.example.com");
    assert_eq!(vias[33].received(), Some("192.0.2.5"));
    assert!(vias[33].branch().unwrap().len() > 200);
    let to = r.to_header().unwrap();
    assert!(to.display.unwrap().len() > 100);
    assert_eq!(to.uri.as_sip().unwrap().port, Some(6000));
    assert!(r.call_id().unwrap().as_str().len() > 100);
    assert_eq!(r.body.len(), 150);
}

#[test]
fn dblreq() {
    // §3.1.1.8: the REGISTER is the message; the INVITE after it in the datagram is discarded.
    let bytes = load("dblreq");
    let r = valid_request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert!(r.to_bytes().len() < bytes.len() / 2);
    assert!(!r.to_bytes().windows(6).any(|w| w == b"INVITE"));
}

#[test]
fn semiuri() {
    // §3.1.1.9: ';' in the user part belongs to the user, not to the URI parameters.
    let r = valid_request("semiuri");
    let u = r.uri.as_sip().unwrap();
    assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(u.host, "example.com");
    assert!(u.params.0.is_empty());
    assert_eq!(sip_user(&r.uri), "user;par=u@example.net");
    let accept = r.headers.get(&HeaderName::Accept).unwrap();
    assert!(accept.starts_with("application/sdp, application/pkcs7-mime, multipart/mixed"));
}

#[test]
fn transports() {
    // §3.1.1.10: unknown transports in Via are accepted.
    let r = valid_request("transports");
    let t: Vec<String> = r.vias().into_iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(
        r.call_id().unwrap().as_str(),
        "transports.kijh4akdnaqjkwendsasfdj"
    );
}

#[test]
fn mpart01() {
    // §3.1.1.11: multipart body with binary parts is carried octet for octet.
    let bytes = load("mpart01");
    let r = valid_request("mpart01");
    assert_eq!(r.method, Method::Message);
    assert_eq!(
        r.content_type(),
        Some("multipart/mixed;boundary=7a9cbec02ceef655")
    );
    assert_eq!(r.body.len(), 553);
    assert!(bytes.ends_with(&r.body));
}

#[test]
fn unreason() {
    // §3.1.1.12: UTF-8 and odd characters in the reason phrase.
    let r = valid_response("unreason");
    assert_eq!(r.code, 200);
    assert_eq!(r.reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
    assert_eq!(r.body.len(), 154);
}

#[test]
fn noreason() {
    // §3.1.1.13: empty reason phrase.
    let r = valid_response("noreason");
    assert_eq!(r.code, 100);
    assert_eq!(r.reason, "");
}

// -------------------------------------------------------------- §3.1.2 invalid messages

#[test]
fn badinv01() {
    // §3.1.2.1: empty Via and Contact parameters → 400.
    let e = invalid("badinv01");
    assert_header_error(&e, "Via");
    answer(&e, 400);
}

#[test]
fn clerr() {
    // §3.1.2.2: Content-Length past the end of the datagram → 400 over UDP.
    let e = invalid("clerr");
    assert_eq!(e.kind, ParseErrorKind::BodyTooShort);
    answer_parses(&e, 400);
}

#[test]
fn ncl() {
    // §3.1.2.3: negative Content-Length → 400.
    let e = invalid("ncl");
    assert_eq!(e.kind, ParseErrorKind::ContentLength);
    answer_parses(&e, 400);
}

#[test]
fn scalar02() {
    // §3.1.2.4: CSeq, Max-Forwards, Expires and contact expires beyond their ranges → 400.
    let e = invalid("scalar02");
    assert_header_error(&e, "CSeq");
    let resp = answer(&e, 400);
    assert_eq!(
        resp.headers.get(&HeaderName::CallId),
        Some("scalar02.23o0pd9vanlq3wnrlnewofjas9ui32")
    );
}

#[test]
fn scalarlg() {
    // §3.1.2.5: a response with an overlarge CSeq is dropped (never answered).
    let e = invalid("scalarlg");
    assert_header_error(&e, "CSeq");
    let raw = e.raw.as_ref().expect("raw head");
    assert!(!raw.is_request());
    assert!(Response::for_raw_request(raw, 400, "Bad Request").is_none());
}

#[test]
fn quotbal() {
    // §3.1.2.6: unterminated quoted display name in To → 400.
    let e = invalid("quotbal");
    assert_header_error(&e, "To");
    answer(&e, 400);
}

#[test]
fn ltgtruri() {
    // §3.1.2.7: Request-URI enclosed in <> → 400.
    let e = invalid("ltgtruri");
    assert!(
        matches!(
            e.kind,
            ParseErrorKind::StartLine(_)
                | ParseErrorKind::Header {
                    name: "Request-URI",
                    ..
                }
        ),
        "{e:?}"
    );
    answer_parses(&e, 400);
}

#[test]
fn lwsruri() {
    // §3.1.2.8: whitespace inside the Request-URI → 400.
    let e = invalid("lwsruri");
    assert!(
        matches!(
            e.kind,
            ParseErrorKind::StartLine(_)
                | ParseErrorKind::Header {
                    name: "Request-URI",
                    ..
                }
        ),
        "{e:?}"
    );
    answer_parses(&e, 400);
}

#[test]
fn lwsstart() {
    // §3.1.2.9: several SP between request-line elements → 400.
    let e = invalid("lwsstart");
    assert!(matches!(e.kind, ParseErrorKind::StartLine(_)), "{e:?}");
    answer_parses(&e, 400);
}

#[test]
fn trws() {
    // §3.1.2.10: SP after the SIP-Version of the request line → 400.
    let e = invalid("trws");
    assert!(matches!(e.kind, ParseErrorKind::StartLine(_)), "{e:?}");
    answer_parses(&e, 400);
}

#[test]
fn escruri() {
    // §3.1.2.11: headers (escaped Route) in a Request-URI → 400.
    let e = invalid("escruri");
    assert_header_error(&e, "Request-URI");
    answer_parses(&e, 400);
}

#[test]
fn regbadct() {
    // §3.1.2.13: a Contact URI with '?' must be in <> → 400.
    let e = invalid("regbadct");
    assert_header_error(&e, "Contact");
    answer_parses(&e, 400);
}

#[test]
fn badaspec() {
    // §3.1.2.14: spaces inside <> in To → 400.
    let e = invalid("badaspec");
    assert_header_error(&e, "To");
    answer(&e, 400);
}

#[test]
fn baddn() {
    // §3.1.2.15: unquoted display names with non-token characters → 400. The file has no
    // blank line after the last header: on a datagram the datagram's end ends the head.
    let e = invalid("baddn");
    assert!(
        matches!(
            e.kind,
            ParseErrorKind::Header {
                name: "From" | "To",
                ..
            }
        ),
        "{e:?}"
    );
    answer(&e, 400);
}

#[test]
fn badvers() {
    // §3.1.2.16: SIP/7.0 → 505 Version Not Supported.
    let e = invalid("badvers");
    assert_eq!(e.kind, ParseErrorKind::Version("SIP/7.0".into()));
    let resp = answer(&e, 505);
    assert_eq!(
        resp.headers.get(&HeaderName::CallId),
        Some("badvers.31417@c.example.com")
    );
}

#[test]
fn mismatch01() {
    // §3.1.2.17: OPTIONS with CSeq method INVITE → 400.
    let e = invalid("mismatch01");
    assert_eq!(e.kind, ParseErrorKind::CSeqMismatch);
    answer_parses(&e, 400);
}

#[test]
fn mismatch02() {
    // §3.1.2.18: unknown method NEWMETHOD with CSeq method INVITE → 400 (or 501).
    let e = invalid("mismatch02");
    assert_eq!(e.kind, ParseErrorKind::CSeqMismatch);
    answer_parses(&e, 400);
}

#[test]
fn bigcode() {
    // §3.1.2.19: status code 4294967301 → the response is dropped.
    let e = invalid("bigcode");
    assert!(matches!(e.kind, ParseErrorKind::StartLine(_)), "{e:?}");
    assert!(
        e.raw
            .as_ref()
            .and_then(|raw| Response::for_raw_request(raw, 400, "Bad Request"))
            .is_none()
    );
}

// ------------------------------------------- §3.1.2.12, §3.2, §3.3, §3.4: parse, then decide

#[test]
fn baddate() {
    // §3.1.2.12: a bad Date is the application's call (a proxy need not look at Date).
    let r = valid_request("baddate");
    assert_eq!(
        r.headers.get(&HeaderName::Date),
        Some("Fri, 01 Jan 2010 16:00:00 EST")
    );
}

#[test]
fn badbranch() {
    // §3.2.1: branch "z9hG4bK" alone: legal syntax, but not an RFC 3261 transaction id.
    let r = valid_request("badbranch");
    assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK"));
}

#[test]
fn insuf() {
    // §3.3.1: no From, To or Call-ID → 400 (Via and CSeq are there to answer with).
    let e = invalid("insuf");
    assert!(matches!(e.kind, ParseErrorKind::Missing(_)), "{e:?}");
    let resp = answer(&e, 400);
    assert_eq!(resp.headers.get(&HeaderName::CSeq), Some("193942 INVITE"));
}

#[test]
fn unkscm() {
    // §3.3.2: unknown Request-URI scheme: parses; the server answers 416.
    let r = valid_request("unkscm");
    assert_eq!(r.method, Method::Options);
    assert_eq!(r.uri.scheme(), "nobodyknowsthisscheme");
    assert!(r.uri.as_sip().is_none());
    let Uri::Other { rest, .. } = &r.uri else {
        panic!()
    };
    assert_eq!(rest, "totallyopaquecontent");
    let resp = r.response(416, "Unsupported URI Scheme", Some("t1"));
    assert_eq!(resp.to_tag().as_deref(), Some("t1"));
}

#[test]
fn novelsc() {
    // §3.3.3: known but atypical scheme (soap.beep) in the Request-URI.
    let r = valid_request("novelsc");
    assert_eq!(r.uri.scheme(), "soap.beep");
    assert!(matches!(&r.uri, Uri::Other { rest, .. } if rest == "//192.0.2.103:3002"));
}

#[test]
fn unksm2() {
    // §3.3.4: unknown schemes in To, From and Contact are accepted.
    let r = valid_request("unksm2");
    assert_eq!(r.to_header().unwrap().uri.scheme(), "isbn");
    let from = r.from_header().unwrap();
    assert_eq!(from.uri.scheme(), "http");
    assert_eq!(from.tag(), Some("3234233"));
    let c = r.contacts().remove(0).unwrap();
    assert!(
        matches!(&c.uri, Uri::Other { scheme, rest } if scheme == "name" && rest == "John_Smith")
    );
}

#[test]
fn bext01() {
    // §3.3.5: unknown Require / Proxy-Require options → 420 with Unsupported.
    let r = valid_request("bext01");
    assert_eq!(
        r.tokens(&HeaderName::Require),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    assert_eq!(
        r.tokens(&HeaderName::ProxyRequire),
        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
    assert_eq!(r.top_via().unwrap().transport, "TLS");
}

#[test]
fn invut() {
    // §3.3.6: unknown Content-Type → 415.
    let r = valid_request("invut");
    assert_eq!(r.content_type(), Some("application/unknownformat"));
    assert_eq!(r.body.len(), 40);
}

#[test]
fn regaut01() {
    // §3.3.7: unknown authorization scheme: the registrar answers 401, it is not a parse error.
    let r = valid_request("regaut01");
    assert_eq!(r.method, Method::Register);
    assert_eq!(
        r.headers.get(&HeaderName::Authorization),
        Some("NoOneKnowsThisScheme opaque-data=here")
    );
}

#[test]
fn multi01() {
    // §3.3.8: several values in single-value headers → 400.
    let e = invalid("multi01");
    assert!(matches!(e.kind, ParseErrorKind::Duplicate(_)), "{e:?}");
    answer_parses(&e, 400);
}

#[test]
fn mcl01() {
    // §3.3.9: two Content-Length values → 400 (on a stream the connection cannot be framed).
    let e = invalid("mcl01");
    assert_eq!(e.kind, ParseErrorKind::Duplicate("Content-Length"));
    answer_parses(&e, 400);
}

#[test]
fn bcast() {
    // §3.3.10: a 200 OK whose second Via is the broadcast address: parses; sending is the
    // transport's decision.
    let r = valid_response("bcast");
    let vias = r.vias();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].host, "255.255.255.255");
    assert_eq!(r.body.len(), 154);
}

#[test]
fn zeromf() {
    // §3.3.11: Max-Forwards 0: an OPTIONS for us is answered, otherwise 483.
    let r = valid_request("zeromf");
    assert_eq!(r.max_forwards(), Some(0));
}

#[test]
fn cparam01() {
    // §3.3.12: without <>, ";unknownparam" is a Contact header parameter.
    let r = valid_request("cparam01");
    let c = r.contacts().remove(0).unwrap();
    assert!(c.params.contains("unknownparam"));
    assert!(c.uri.as_sip().unwrap().params.0.is_empty());
    assert_eq!(sip_user(&c.uri), "+19725552222");
}

#[test]
fn cparam02() {
    // §3.3.13: inside <>, ";unknownparam" is a URI parameter.
    let r = valid_request("cparam02");
    let c = r.contacts().remove(0).unwrap();
    assert!(c.params.0.is_empty());
    assert!(c.uri.as_sip().unwrap().params.contains("unknownparam"));
}

#[test]
fn regescrt() {
    // §3.3.14: an escaped Route header inside a bracketed Contact URI is legal.
    let r = valid_request("regescrt");
    let c = r.contacts().remove(0).unwrap();
    assert_eq!(
        c.uri.as_sip().unwrap().headers.as_deref(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
}

#[test]
fn sdp01() {
    // §3.3.15: Accept offers only an unknown type → 406 by the application.
    let r = valid_request("sdp01");
    assert_eq!(
        r.headers.get(&HeaderName::Accept),
        Some("text/nobodyKnowsThis")
    );
    assert_eq!(r.content_type(), Some("application/sdp"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn inv2543() {
    // §3.4.1: RFC 2543 INVITE: no branch, no Max-Forwards, no Content-Length (the body runs
    // to the end of the datagram).
    let bytes = load("inv2543");
    let r = valid_request("inv2543");
    let via = r.top_via().unwrap();
    assert_eq!(via.branch(), None);
    assert_eq!(r.max_forwards(), None);
    assert!(!r.body.is_empty());
    assert!(bytes.ends_with(&r.body));
    let to: NameAddr = r.to_header().unwrap();
    assert!(to.params.contains("user"));
}

// ------------------------------------------------------------------------- coverage

/// Every file in the directory has a test above (a new file must get one).
#[test]
fn every_file_has_a_verdict() {
    const NAMES: &[&str] = &[
        "badaspec",
        "badbranch",
        "baddate",
        "baddn",
        "badinv01",
        "badvers",
        "bcast",
        "bext01",
        "bigcode",
        "clerr",
        "cparam01",
        "cparam02",
        "dblreq",
        "esc01",
        "esc02",
        "escnull",
        "escruri",
        "insuf",
        "intmeth",
        "inv2543",
        "invut",
        "longreq",
        "ltgtruri",
        "lwsdisp",
        "lwsruri",
        "lwsstart",
        "mcl01",
        "mismatch01",
        "mismatch02",
        "mpart01",
        "multi01",
        "ncl",
        "noreason",
        "novelsc",
        "quotbal",
        "regaut01",
        "regbadct",
        "regescrt",
        "scalar02",
        "scalarlg",
        "sdp01",
        "semiuri",
        "transports",
        "trws",
        "unkscm",
        "unksm2",
        "unreason",
        "wsinv",
        "zeromf",
    ];
    assert_eq!(all_names(), NAMES);
}

// ------------------------------------------------------------------------- TCP framing

/// Splits a stream into frames the way the TCP transport does; stops at the first error or
/// at an incomplete tail, which is returned.
fn frames(stream: &[u8]) -> (Vec<&[u8]>, Result<usize, FrameError>) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        match frame(&stream[pos..]) {
            Ok(Frame::Message(n)) => {
                assert!(n > 0 && pos + n <= stream.len());
                out.push(&stream[pos..pos + n]);
                pos += n;
            }
            Ok(Frame::Ping(n) | Frame::Skip(n)) => {
                assert!(n > 0);
                pos += n;
            }
            Ok(Frame::Incomplete) => return (out, Ok(stream.len() - pos)),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// How each file frames on its own as a TCP stream: the number of messages framed, then what
/// is left (`Ok(n)`: `n` bytes wait for more data; `Err`: the connection must be closed).
fn stream_expectation(name: &str, len: usize) -> (usize, Result<usize, FrameError>) {
    match name {
        // Content-Length 9999: the stream waits for more bytes (a read timeout closes it).
        "clerr" => (0, Ok(len)),
        // No blank line after the head: on a stream the head never ends.
        "baddn" => (0, Ok(len)),
        "ncl" => (0, Err(FrameError::BadContentLength)),
        // Two different Content-Length values: a stream cannot be framed safely.
        "mcl01" => (0, Err(FrameError::BadContentLength)),
        // No Content-Length: on a stream the body is empty; the SDP then waits for a blank
        // line that never comes.
        "inv2543" => (1, Ok(105)),
        // REGISTER, INVITE (Content-Length 150), then the 5 octets past that body ("C" and
        // two CRLFs) frame as a junk message that does not parse.
        "dblreq" => (3, Ok(0)),
        _ => (1, Ok(0)),
    }
}

#[test]
fn each_file_as_a_tcp_stream() {
    for name in all_names() {
        let bytes = load(&name);
        let (msgs, tail) = frames(&bytes);
        assert_eq!(
            (msgs.len(), tail.clone()),
            stream_expectation(&name, bytes.len()),
            "{name}"
        );
        // A framed message parses (or fails) exactly like the datagram, except where the
        // datagram's end mattered.
        if stream_expectation(&name, bytes.len()) == (1, Ok(0)) {
            assert_eq!(msgs[0], &bytes[..], "{name}");
            let framed = SipMessage::parse_framed(msgs[0]).map_err(|e| e.kind);
            let dgram = SipMessage::parse(&bytes).map_err(|e| e.kind);
            assert_eq!(framed, dgram, "{name}");
        }
    }
    // dblreq: the INVITE after the REGISTER is a message of its own on a stream.
    let bytes = load("dblreq");
    let (msgs, _) = frames(&bytes);
    let SipMessage::Request(reg) = SipMessage::parse_framed(msgs[0]).unwrap() else {
        panic!()
    };
    assert_eq!(reg.method, Method::Register);
    let SipMessage::Request(inv) = SipMessage::parse_framed(msgs[1]).unwrap() else {
        panic!()
    };
    assert_eq!(inv.method, Method::Invite);
    assert_eq!(inv.body.len(), 150);
    assert_eq!(msgs[2], b"C\r\n\r\n");
    assert!(SipMessage::parse_framed(msgs[2]).is_err());
    // inv2543: the request itself frames (with an empty body) and parses.
    let bytes = load("inv2543");
    let (msgs, _) = frames(&bytes);
    let SipMessage::Request(inv) = SipMessage::parse_framed(msgs[0]).unwrap() else {
        panic!()
    };
    assert!(inv.body.is_empty());
}

#[test]
fn all_files_concatenated_on_one_stream() {
    // Files that frame exactly can share a connection; the ones that desynchronise or close
    // it (clerr, baddn, ncl, mcl01, inv2543) are sent last, one of them at the end.
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for name in all_names() {
        let b = load(&name);
        if let (n @ (1 | 3), Ok(0)) = stream_expectation(&name, b.len()) {
            let (msgs, _) = frames(&b);
            assert_eq!(msgs.len(), n);
            expected.extend(msgs.iter().map(|m| m.to_vec()));
            stream.extend_from_slice(&b);
            // CRLF keep-alives between messages are skipped.
            stream.extend_from_slice(b"\r\n");
        }
    }
    assert_eq!(expected.len(), 43 + 3);
    for last in ["clerr", "ncl", "mcl01"] {
        let mut s = stream.clone();
        s.extend_from_slice(&load(last));
        let (msgs, tail) = frames(&s);
        assert_eq!(msgs.len(), expected.len(), "{last}");
        for (m, e) in msgs.iter().zip(&expected) {
            assert_eq!(m, e);
        }
        match last {
            "clerr" => assert_eq!(tail, Ok(load("clerr").len())),
            _ => assert_eq!(tail, Err(FrameError::BadContentLength)),
        }
    }
    // Every framed message gives the datagram verdict.
    let (msgs, _) = frames(&stream);
    for m in msgs {
        assert_eq!(
            SipMessage::parse_framed(m).map_err(|e| e.kind),
            SipMessage::parse(m).map_err(|e| e.kind)
        );
    }
}

/// Prints the datagram and stream verdict of every file:
/// `cargo test -p cti-server --test rfc4475_parse -- --ignored --nocapture verdict_table`.
#[test]
#[ignore = "report helper"]
fn verdict_table() {
    for name in all_names() {
        let bytes = load(&name);
        let dgram = match SipMessage::parse(&bytes) {
            Ok(SipMessage::Request(r)) => format!("Ok request {}", r.method),
            Ok(SipMessage::Response(r)) => format!("Ok response {}", r.code),
            Err(e) => {
                let answer = e
                    .raw
                    .as_ref()
                    .and_then(|raw| Response::for_raw_request(raw, 400, "Bad Request"))
                    .map_or("no answer", |_| "answerable");
                format!("Err {:?} ({answer})", e.kind)
            }
        };
        let (msgs, tail) = frames(&bytes);
        println!("| {name} | {dgram} | {} msg, tail {tail:?} |", msgs.len());
    }
}
