//! RFC 8760 SHA-256 digest over the wire (sipp 3.6 knows only MD5, so this client is ours,
//! built from the crate's client-side digest helper), and the algorithm policy key.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::Server;
use cti_server::sip::auth::{Algorithm, challenge_param, client_authorization};

fn register(port: u16, cseq: u32, auth: Option<&str>) -> Vec<u8> {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:cti.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKsha{cseq}\r\nFrom: <sip:1001@cti.local>;tag=s1\r\nTo: <sip:1001@cti.local>\r\nCall-ID: sha256-reg@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:{port}>\r\nExpires: 300\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn exchange(sock: &UdpSocket, msg: &[u8]) -> String {
    sock.send(msg).unwrap();
    let mut buf = [0u8; 8192];
    let n = sock.recv(&mut buf).expect("a response");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn challenges(resp: &str) -> Vec<String> {
    resp.lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn sha256_preferred_client_registers_and_md5_is_refused_when_not_offered() {
    let server = Server::start(&["sip.digest_algorithms=[\"SHA-256\"]"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.connect(server.sip).unwrap();
    let port = sock.local_addr().unwrap().port();

    let r = exchange(&sock, &register(port, 1, None));
    assert!(r.starts_with("SIP/2.0 401"), "{r}");
    let ch = challenges(&r);
    assert_eq!(ch.len(), 1, "{r}");
    assert!(ch[0].contains("algorithm=SHA-256"), "{r}");
    let nonce = challenge_param(&ch[0], "nonce").unwrap();

    // MD5 credentials are refused when only SHA-256 is offered.
    let md5 = client_authorization(
        &nonce,
        "cti.local",
        Algorithm::Md5,
        "1001",
        "demo1001",
        "REGISTER",
        "sip:cti.local",
        1,
    );
    let r = exchange(&sock, &register(port, 2, Some(&md5)));
    assert!(r.starts_with("SIP/2.0 401"), "{r}");

    let sha = client_authorization(
        &nonce,
        "cti.local",
        Algorithm::Sha256,
        "1001",
        "demo1001",
        "REGISTER",
        "sip:cti.local",
        2,
    );
    let r = exchange(&sock, &register(port, 3, Some(&sha)));
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(
        r.contains(&format!("<sip:1001@127.0.0.1:{port}>;expires=300")),
        "{r}"
    );
    // The SIP task publishes its counters after it sent the 200: allow it a moment.
    let mut health = String::new();
    for _ in 0..50 {
        health = server.http_get("/healthz").1;
        if health.contains("\"registrations\":1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(health.contains("\"registrations\":1"), "{health}");
}

#[test]
fn default_config_offers_md5_then_sha256_and_accepts_both() {
    let server = Server::start(&[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.connect(server.sip).unwrap();
    let port = sock.local_addr().unwrap().port();
    let r = exchange(&sock, &register(port, 1, None));
    let ch = challenges(&r);
    assert_eq!(ch.len(), 2, "{r}");
    assert!(
        ch[0].contains("algorithm=MD5") && ch[1].contains("algorithm=SHA-256"),
        "{r}"
    );
    let nonce = challenge_param(&ch[1], "nonce").unwrap();
    let sha = client_authorization(
        &nonce,
        "cti.local",
        Algorithm::Sha256,
        "1001",
        "demo1001",
        "REGISTER",
        "sip:cti.local",
        1,
    );
    let r = exchange(&sock, &register(port, 2, Some(&sha)));
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
}
