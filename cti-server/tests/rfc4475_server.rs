//! RFC 4475 torture messages sent to the running server over UDP and TCP: the server never
//! panics or stalls, answers or drops each as its RFC 4475 section asks, and keeps serving a
//! normal OPTIONS right after each one.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Server, repo_root};

/// The server's answer to each file sent alone: a status code, or `None` for a message that
/// must be dropped (responses matching no transaction, unparseable responses).
const VERDICTS: &[(&str, Option<u16>)] = &[
    ("wsinv", Some(481)), // §3.1.1.1 valid; its To has a tag: an unknown dialog gets 481 (§12.2.2)
    ("intmeth", Some(501)), // §3.1.1.2 valid, unknown method: 501
    ("esc01", Some(404)), // §3.1.1.3 valid INVITE, routed: no such user
    ("escnull", Some(401)), // §3.1.1.4 valid REGISTER: challenged
    ("esc02", Some(501)), // §3.1.1.5 method RE%47IST%45R is not REGISTER
    ("lwsdisp", Some(200)), // §3.1.1.6 valid OPTIONS
    ("longreq", Some(404)), // §3.1.1.7 valid INVITE, routed: no such user
    ("dblreq", Some(401)), // §3.1.1.8 REGISTER; trailing INVITE discarded (UDP)
    ("semiuri", Some(200)), // §3.1.1.9 valid OPTIONS
    ("transports", Some(200)), // §3.1.1.10 valid OPTIONS
    ("mpart01", Some(405)), // §3.1.1.11 valid MESSAGE (multipart body parsed): not allowed
    ("unreason", None),   // §3.1.1.12 valid response, matches nothing: dropped
    ("noreason", None),   // §3.1.1.13 valid response, matches nothing: dropped
    ("badinv01", Some(400)), // §3.1.2.1
    ("clerr", Some(400)), // §3.1.2.2 (UDP: Content-Length beyond the datagram)
    ("ncl", Some(400)),   // §3.1.2.3
    ("scalar02", Some(400)), // §3.1.2.4
    ("scalarlg", None),   // §3.1.2.5 malformed response: dropped
    ("quotbal", Some(400)), // §3.1.2.6
    ("ltgtruri", Some(400)), // §3.1.2.7
    ("lwsruri", Some(400)), // §3.1.2.8
    ("lwsstart", Some(400)), // §3.1.2.9
    ("trws", Some(400)),  // §3.1.2.10
    ("escruri", Some(400)), // §3.1.2.11
    ("baddate", Some(404)), // §3.1.2.12 bad Date is ignored: a normal INVITE (no such user)
    ("regbadct", Some(400)), // §3.1.2.13
    ("badaspec", Some(400)), // §3.1.2.14
    ("baddn", Some(400)), // §3.1.2.15
    ("badvers", Some(505)), // §3.1.2.16
    ("mismatch01", Some(400)), // §3.1.2.17
    ("mismatch02", Some(400)), // §3.1.2.18
    ("bigcode", None),    // §3.1.2.19 malformed response: dropped
    ("badbranch", Some(200)), // §3.2.1 branch without cookie: RFC 2543 matching, answered
    ("insuf", Some(400)), // §3.3.1 missing From/To/Call-ID
    ("unkscm", Some(416)), // §3.3.2
    ("novelsc", Some(416)), // §3.3.3 soap.beep is not ours
    ("unksm2", Some(401)), // §3.3.4 unknown schemes in To/From/Contact are fine
    ("bext01", Some(420)), // §3.3.5
    ("invut", Some(415)), // §3.3.6
    ("regaut01", Some(401)), // §3.3.7 unknown auth scheme: challenge
    ("multi01", Some(400)), // §3.3.8
    ("mcl01", Some(400)), // §3.3.9
    ("bcast", None),      // §3.3.10 response to nothing: dropped
    ("zeromf", Some(200)), // §3.3.11 OPTIONS for us with Max-Forwards 0: answered
    ("cparam01", Some(401)), // §3.3.12
    ("cparam02", Some(401)), // §3.3.13
    ("regescrt", Some(401)), // §3.3.14
    ("sdp01", Some(406)), // §3.3.15
    ("inv2543", Some(404)), // §3.4.1 RFC 2543 INVITE accepted and routed: no such user
];

fn torture(name: &str) -> Vec<u8> {
    let p = repo_root()
        .parent()
        .expect("workspace has a parent")
        .join("shared/conformance/rfc4475")
        .join(format!("{name}.dat"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn status_of(msg: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(msg).ok()?;
    let line = s.lines().next()?;
    line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// A response seen by the test: status code and its transaction key.
type Seen = (u16, (Option<String>, Option<String>));

/// The transaction key of a message as a test sees it: top Via branch and CSeq value.
fn tx_key_of(msg: &[u8]) -> (Option<String>, Option<String>) {
    // Unfold continuation lines first (RFC 3261 §7.3.1), as wsinv needs.
    let s = String::from_utf8_lossy(msg)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let head = s.split("\r\n\r\n").next().unwrap_or("");
    let header = |names: &[&str]| {
        head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            names
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
                .then(|| value.trim().to_string())
        })
    };
    let branch = header(&["via", "v"]).and_then(|v| {
        let b = v.split("branch").nth(1)?;
        let b = b.trim_start().strip_prefix('=')?.trim_start();
        Some(b.split([';', ',', ' ']).next()?.to_string())
    });
    let cseq = header(&["cseq"]).map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "));
    (branch, cseq)
}

/// Keeps the answers that belong to the transaction `sent` opened (RFC 3261 §17.2.3: a
/// request with the branch, sent-by and method of an earlier one is a retransmission of it,
/// and several RFC 4475 files share those). The server also still retransmits final responses
/// to earlier INVITEs this test never acknowledges; those must not count here.
fn answers_to(sent: &[u8], got: Vec<Seen>) -> Vec<u16> {
    let (branch, cseq) = tx_key_of(sent);
    got.into_iter()
        // RFC 4475's messages reuse branch values, and a 404 to an earlier INVITE is
        // retransmitted until ACKed: on a loaded machine one lands in a later message's
        // window. Its CSeq method tells it apart. (Not the number: a request matching an
        // earlier transaction, as cparam02 matches cparam01, is answered with that
        // transaction's response, CSeq and all, RFC 3261 §17.2.3.)
        .filter(|(_, (b, c))| match &branch {
            Some(_) => (b.is_none() || *b == branch) && same_method(c, &cseq),
            None => cseq.is_none() || c.is_none() || *c == cseq,
        })
        .map(|(code, _)| code)
        .collect()
}

/// The CSeq methods are the same, or one of them is unknown.
fn same_method(a: &Option<String>, b: &Option<String>) -> bool {
    let method = |x: &Option<String>| {
        x.as_deref()
            .and_then(|v| v.split_whitespace().nth(1))
            .map(str::to_ascii_uppercase)
    };
    match (method(a), method(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

fn options(port: u16, transport: &str, n: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKprobe{n}\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:probe@127.0.0.1>\r\nCall-ID: probe-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Collects status code and Call-ID of every datagram arriving within `wait`.
fn udp_collect(sock: &UdpSocket, wait: Duration) -> Vec<Seen> {
    let mut codes = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 65535];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => codes.push((status_of(&buf[..n]).unwrap_or(0), tx_key_of(&buf[..n]))),
            Err(_) => break,
        }
    }
    codes
}

#[test]
fn rfc4475_over_udp_answers_or_drops_and_keeps_serving() {
    let server = Server::start(&[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.sip).unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut failures = Vec::new();
    for (i, (name, expected)) in VERDICTS.iter().enumerate() {
        let sent = torture(name);
        sock.send(&sent).unwrap();
        // Expected answers arrive at once; a drop is confirmed by silence for 300 ms.
        let wait = Duration::from_millis(if expected.is_some() { 600 } else { 300 });
        let got = answers_to(&sent, udp_collect(&sock, wait));
        let first_final = got.iter().copied().find(|c| *c >= 200);
        if first_final != *expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        let probe = options(port, "UDP", i);
        sock.send(&probe).unwrap();
        let after = answers_to(&probe, udp_collect(&sock, Duration::from_millis(400)));
        if !after.contains(&200) {
            failures.push(format!("{name}: OPTIONS afterwards got {after:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nserver log tail:\n{}",
        failures.join("\n"),
        tail(&server.log_text())
    );
}

/// Reads whatever arrives on a TCP connection within `wait`, split into messages by status line.
fn tcp_collect(s: &mut TcpStream, wait: Duration) -> Vec<u16> {
    let mut data = Vec::new();
    let end = Instant::now() + wait;
    let mut buf = [0u8; 65535];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&data)
        .split("SIP/2.0 ")
        .skip(1)
        .filter_map(|m| m.get(..3)?.parse().ok())
        .collect()
}

#[test]
fn rfc4475_over_tcp_answers_or_drops_and_keeps_serving() {
    let server = Server::start(&[]);
    let mut failures = Vec::new();
    for (i, (name, expected)) in VERDICTS.iter().enumerate() {
        let expected = match *name {
            // On a stream, Content-Length 9999 means "more is coming", and a head without its
            // blank line is not finished: nothing to answer yet (RFC 3261 §18.3).
            "clerr" | "baddn" => None,
            _ => *expected,
        };
        let mut s = TcpStream::connect(server.sip).unwrap();
        s.write_all(&torture(name)).unwrap();
        let got = tcp_collect(
            &mut s,
            Duration::from_millis(if expected.is_some() { 600 } else { 300 }),
        );
        let first_final = got.iter().copied().find(|c| *c >= 200);
        if first_final != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        if *name == "dblreq" && got.iter().filter(|c| **c >= 200).count() != 2 {
            failures.push(format!(
                "dblreq: a stream carries both requests, got {got:?}"
            ));
        }
        drop(s);
        let mut probe = TcpStream::connect(server.sip).unwrap();
        let port = probe.local_addr().unwrap().port();
        probe.write_all(&options(port, "TCP", i)).unwrap();
        let after = tcp_collect(&mut probe, Duration::from_millis(400));
        if !after.contains(&200) {
            failures.push(format!("{name}: OPTIONS afterwards got {after:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nserver log tail:\n{}",
        failures.join("\n"),
        tail(&server.log_text())
    );
}

#[test]
fn all_messages_back_to_back_on_one_udp_socket_then_options() {
    // A burst of every file with no pauses: nothing may wedge the server.
    let server = Server::start(&[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.sip).unwrap();
    for _ in 0..3 {
        for (name, _) in VERDICTS {
            sock.send(&torture(name)).unwrap();
        }
    }
    let port = sock.local_addr().unwrap().port();
    std::thread::sleep(Duration::from_millis(300));
    let _ = udp_collect(&sock, Duration::from_millis(200));
    let probe = options(port, "UDP", 999);
    sock.send(&probe).unwrap();
    let after = answers_to(&probe, udp_collect(&sock, Duration::from_millis(1000)));
    assert!(after.contains(&200), "got {after:?}");
    let (status, body) = server.http_get("/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"dropped_events\":0"), "{body}");
    let _: SocketAddr = server.sip;
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
