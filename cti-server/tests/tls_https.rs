//! HTTPS with the server's own certificate, the plain-HTTP rule, session cookies with CSRF
//! protection, and SIP over TLS: a phone (a small TLS SIP client here, as sipp has no TLS)
//! registers with digest authentication and takes a call from a sipp carrier over TLS, with
//! the carrier's audio reaching it.

mod common;

use common::{Server, TonePeer, https_request, pem_fingerprint, probe_call, tls_connect};
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn cert_of(server: &Server) -> PathBuf {
    server.dir.path().join("data/tls/self-signed.crt")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn https_serves_with_a_self_signed_certificate_kept_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = format!("storage.data_dir={}", data.path().display());
    let server = Server::start(&["http.tls_listen=127.0.0.1:0", &data_dir]);
    let https = server.https.expect("an https= address in the ready line");
    let cert = data.path().join("tls/self-signed.crt");
    // The fingerprint printed at start is the certificate's.
    let line = server.tls_line.clone().expect("the certificate line");
    let fp = pem_fingerprint(&cert);
    assert!(
        line.contains("self-signed") && line.contains(&format!("sha256={fp}")),
        "{line} / {fp}"
    );
    // A client that trusts that certificate reaches the API by name and by address.
    for name in ["localhost", "127.0.0.1"] {
        let (code, _, body) = https_request(https, &cert, name, "GET /healthz HTTP/1.1", b"")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    }
    // The agent console is served over HTTPS too.
    let (code, _, body) = https_request(https, &cert, "localhost", "GET /agent/ HTTP/1.1", b"")
        .expect("the console page");
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("<html"));
    // A client that trusts something else is refused the handshake: it really is TLS.
    let other = tempfile::tempdir().unwrap();
    let other_server = Server::start(&[
        "http.tls_listen=127.0.0.1:0",
        &format!("storage.data_dir={}", other.path().display()),
    ]);
    let other_cert = other.path().join("tls/self-signed.crt");
    assert_ne!(
        pem_fingerprint(&other_cert),
        fp,
        "each server makes its own"
    );
    let e = match tls_connect(https, &other_cert, "localhost") {
        Ok(_) => panic!("an untrusted certificate was accepted"),
        Err(e) => e,
    };
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    drop(other_server);
    // Plain HTTP on the TLS port gets nowhere.
    {
        let mut s = std::net::TcpStream::connect(https).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            !String::from_utf8_lossy(&out).contains("200 OK"),
            "plain HTTP answered on the TLS port"
        );
    }
    drop(server);
    // A restart keeps the certificate an admin trusted.
    let again = Server::start(&["http.tls_listen=127.0.0.1:0", &data_dir]);
    assert!(
        again.tls_line.clone().unwrap().contains(&fp),
        "{:?}",
        again.tls_line
    );
    let (code, _, _) = https_request(
        again.https.unwrap(),
        &cert,
        "localhost",
        "GET /healthz HTTP/1.1",
        b"",
    )
    .expect("the same certificate after a restart");
    assert_eq!(code, 200);
}

#[test]
fn a_configured_certificate_is_used_and_a_broken_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate made elsewhere (here: by the server's own code path in another data
    // directory), given as tls.cert and tls.key.
    let maker = Server::start(&[
        "http.tls_listen=127.0.0.1:0",
        &format!("storage.data_dir={}", dir.path().join("maker").display()),
    ]);
    let made = dir.path().join("maker/tls");
    drop(maker);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(made.join("self-signed.crt"), &cert).unwrap();
    std::fs::copy(made.join("self-signed.key"), &key).unwrap();
    let server = Server::start(&[
        "http.tls_listen=127.0.0.1:0",
        &format!("tls.cert={}", cert.display()),
        &format!("tls.key={}", key.display()),
    ]);
    assert!(
        server.tls_line.clone().unwrap().contains("configured"),
        "{:?}",
        server.tls_line
    );
    assert!(!cert_of(&server).exists(), "no self-signed one was made");
    let (code, _, _) = https_request(
        server.https.unwrap(),
        &cert,
        "localhost",
        "GET /healthz HTTP/1.1",
        b"",
    )
    .expect("served with the configured certificate");
    assert_eq!(code, 200);
    drop(server);
    // A key file that is not a key: the server does not start, and says which file.
    std::fs::write(&key, "not a key").unwrap();
    let out = run_server(&[
        "http.tls_listen=127.0.0.1:0",
        &format!("tls.cert={}", cert.display()),
        &format!("tls.key={}", key.display()),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.key"), "{err}");
}

/// Runs the server binary with the test's usual overrides plus `extra`, expecting it to stop
/// by itself (a configuration it refuses).
fn run_server(extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cti-server"));
    cmd.current_dir(common::repo_root())
        .arg("--config")
        .arg(common::repo_root().join("config/cti.toml"));
    for s in [
        "sip.listen=127.0.0.1:0".to_string(),
        "sip.tls_listen=".into(),
        format!("storage.data_dir={}", dir.path().display()),
    ]
    .iter()
    .map(String::as_str)
    .chain(extra.iter().copied())
    {
        cmd.arg("--set").arg(s);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server kept running: {:?}", child.wait_with_output());
}

#[test]
fn plain_http_listens_on_loopback_only_unless_allowed() {
    let out = run_server(&["http.listen=0.0.0.0:0", "http.tls_listen="]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.listen") && err.contains("loopback") && err.contains("allow_plain"),
        "{err}"
    );
    // Explicitly allowed (behind a TLS proxy), it starts.
    let server = Server::start(&["http.listen=0.0.0.0:0", "http.allow_plain=true"]);
    let port = server.http.port();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn sessions_are_secure_http_only_cookies_and_changes_need_the_csrf_token() {
    let server = Server::start(&["http.tls_listen=127.0.0.1:0"]);
    let https = server.https.unwrap();
    let cert = cert_of(&server);
    let login = br#"{"user":"1001","password":"demo1001"}"#;
    let (code, headers, body) = https_request(
        https,
        &cert,
        "localhost",
        "POST /api/login HTTP/1.1\r\nContent-Type: application/json",
        login,
    )
    .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let set = header(&headers, "set-cookie");
    assert_eq!(set.len(), 1, "{headers:?}");
    let cookie = set[0];
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let session = cookie.split(';').next().unwrap().trim().to_string();
    assert!(session.starts_with("cti_session=") && session.len() > 20);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let csrf = json["csrf"].as_str().expect("a CSRF token").to_string();

    let req = |head: &str, body: &[u8]| {
        let (code, _, body) = https_request(https, &cert, "localhost", head, body).unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    };
    // The cookie alone reads, and /api/me tells a reloaded page its CSRF token.
    let (code, body) = req(&format!("GET /api/me HTTP/1.1\r\nCookie: {session}"), b"");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&csrf), "{body}");
    // A change with the cookie but without the token (a forged form post) is refused.
    let state = br#"{"state":"break","reason":"lunch"}"#;
    let change = format!(
        "POST /api/agents/1001/state HTTP/1.1\r\nContent-Type: application/json\r\nCookie: {session}"
    );
    let (code, body) = req(&change, state);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("X-CSRF-Token"), "{body}");
    let (code, body) = req(&format!("{change}\r\nX-CSRF-Token: 0123"), state);
    assert_eq!(code, 403, "{body}");
    // With the token it goes through.
    let (code, body) = req(&format!("{change}\r\nX-CSRF-Token: {csrf}"), state);
    assert_eq!(code, 200, "{body}");
    // Another site's page is refused even with the token (and reading, too).
    let (code, body) = req(
        &format!("{change}\r\nX-CSRF-Token: {csrf}\r\nOrigin: https://evil.example"),
        state,
    );
    assert_eq!(code, 403, "{body}");
    let (code, _) = req(
        &format!("GET /api/me HTTP/1.1\r\nCookie: {session}\r\nOrigin: https://evil.example"),
        b"",
    );
    assert_eq!(code, 403);
    // The page's own origin is fine.
    let (code, _) = req(
        &format!(
            "GET /api/me HTTP/1.1\r\nCookie: {session}\r\nOrigin: https://localhost:{}",
            https.port()
        ),
        b"",
    );
    assert_eq!(code, 200);
    // Scripts with a bearer token need no CSRF token (a browser never adds one by itself).
    let token = json["token"].as_str().unwrap();
    let (code, body) = req(
        &format!(
            "POST /api/agents/1001/state HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}"
        ),
        br#"{"state":"available"}"#,
    );
    assert_eq!(code, 200, "{body}");
    // Logging out clears the cookie and ends the session.
    let (code, headers, _) = https_request(
        https,
        &cert,
        "localhost",
        &format!("POST /api/logout HTTP/1.1\r\nCookie: {session}\r\nX-CSRF-Token: {csrf}"),
        b"",
    )
    .unwrap();
    assert_eq!(code, 200);
    assert!(
        header(&headers, "set-cookie")[0].contains("Max-Age=0"),
        "{headers:?}"
    );
    let (code, _) = req(&format!("GET /api/me HTTP/1.1\r\nCookie: {session}"), b"");
    assert_eq!(code, 401);

    // Over plain HTTP (loopback) the cookie cannot be Secure: the browser would drop it.
    let (code, body) = server.http(
        "POST",
        "/api/login",
        None,
        Some(std::str::from_utf8(login).unwrap()),
    );
    assert_eq!(code, 200, "{body}");
    let (_, headers, _) = server.http_get_raw("/api/me", &[]);
    assert!(header(&headers, "set-cookie").is_empty());
    let raw = {
        let mut s = std::net::TcpStream::connect(server.http).unwrap();
        write!(
            s,
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            login.len()
        )
        .unwrap();
        s.write_all(login).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let cookie_line = raw
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie over plain HTTP too");
    assert!(
        cookie_line.contains("HttpOnly") && !cookie_line.contains("Secure"),
        "{cookie_line}"
    );
}

/// A SIP phone over TLS: sends requests and answers the server's, framing by Content-Length.
struct TlsPhone {
    stream: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    buf: Vec<u8>,
    local: std::net::SocketAddr,
}

impl TlsPhone {
    fn connect(server: &Server) -> TlsPhone {
        let stream = tls_connect(
            server.sips.expect("sips= in the ready line"),
            &cert_of(server),
            "localhost",
        )
        .expect("TLS to the SIP port");
        stream
            .sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = stream.sock.local_addr().unwrap();
        TlsPhone {
            stream,
            buf: Vec::new(),
            local,
        }
    }

    fn send(&mut self, msg: &str) {
        self.stream.write_all(msg.as_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next whole message within `wait`.
    fn recv(&mut self, wait: Duration) -> Option<String> {
        let t0 = Instant::now();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        (k.trim().eq_ignore_ascii_case("content-length") || k.trim() == "l")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let msg: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    return Some(String::from_utf8_lossy(&msg).into_owned());
                }
            }
            if t0.elapsed() > wait {
                return None;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("TLS read: {e}"),
            }
        }
    }

    /// The next request of `method` (other requests are answered 200, responses skipped).
    fn expect_request(&mut self, method: &str, wait: Duration) -> String {
        let t0 = Instant::now();
        while t0.elapsed() < wait {
            let Some(m) = self.recv(Duration::from_millis(500)) else {
                continue;
            };
            if m.starts_with(&format!("{method} ")) {
                return m;
            }
            if !m.starts_with("SIP/2.0") && !m.starts_with("ACK ") {
                let ok = response(&m, 200, "OK", "", None);
                self.send(&ok);
            }
        }
        panic!("no {method} over TLS within {wait:?}");
    }
}

fn hdr<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// A response to `req` copying its Via, From, To (with `to_tag` added), Call-ID and CSeq.
fn response(req: &str, code: u16, reason: &str, to_tag: &str, sdp: Option<&str>) -> String {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for v in hdr(req, "via") {
        r.push_str(&format!("Via: {v}\r\n"));
    }
    r.push_str(&format!("From: {}\r\n", hdr(req, "from")[0]));
    let to = hdr(req, "to")[0];
    if to.contains(";tag=") || to_tag.is_empty() {
        r.push_str(&format!("To: {to}\r\n"));
    } else {
        r.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    r.push_str(&format!("Call-ID: {}\r\n", hdr(req, "call-id")[0]));
    r.push_str(&format!("CSeq: {}\r\n", hdr(req, "cseq")[0]));
    r.push_str("Contact: <sip:1001@127.0.0.1;transport=tls>\r\n");
    match sdp {
        Some(s) => r.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{s}",
            s.len()
        )),
        None => r.push_str("Content-Length: 0\r\n\r\n"),
    }
    r
}

fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

#[test]
fn a_phone_registers_and_takes_a_call_over_tls() {
    let server = Server::start(&["sip.tls_listen=127.0.0.1:0"]);
    let mut phone = TlsPhone::connect(&server);
    let port = phone.local.port();
    let contact = format!("<sip:1001@127.0.0.1:{port};transport=tls>");
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:cti.local SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:{port};branch=z9hG4bKtls{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@cti.local>;tag=tlsphone\r\nTo: <sip:1001@cti.local>\r\nCall-ID: tls-reg-1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    phone.send(&register(1, ""));
    let challenge = phone.recv(Duration::from_secs(5)).expect("a 401");
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let www = hdr(&challenge, "www-authenticate")
        .into_iter()
        .find(|v| v.contains("MD5"))
        .expect("an MD5 challenge")
        .to_string();
    let param = |name: &str| {
        www.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let ha1 = md5_hex(&format!("1001:{realm}:demo1001"));
    let ha2 = md5_hex("REGISTER:sip:cti.local");
    let digest = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let auth = format!(
        "Authorization: Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:cti.local\", response=\"{digest}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    );
    phone.send(&register(2, &auth));
    let ok = phone.recv(Duration::from_secs(5)).expect("a 200");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        hdr(&ok, "contact")
            .iter()
            .any(|c| c.contains("transport=tls")),
        "{ok}"
    );

    // A carrier calls the agent; the server reaches the phone over its TLS connection.
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    // The phone answers in a thread of its own: the carrier's call waits for the answer.
    let answering = std::thread::spawn(move || {
        let invite = phone.expect_request("INVITE", Duration::from_secs(15));
        phone.send(&response(&invite, 180, "Ringing", "tlsagent", None));
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        );
        phone.send(&response(&invite, 200, "OK", "tlsagent", Some(&sdp)));
        phone.expect_request("ACK", Duration::from_secs(5));
        (phone, invite)
    });
    let (caller, caller_media, target) = probe_call(&server, "1001");
    let (mut phone, invite) = answering.join().expect("the phone answered");
    assert!(
        hdr(&invite, "via")[0].starts_with("SIP/2.0/TLS"),
        "our Via names TLS: {invite}"
    );
    let customer = TonePeer::tone(caller_media, target.expect("answered"), 440.0);
    // The customer's audio reaches the phone.
    let mut packets = 0;
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok((n, _)) = rtp.recv_from(&mut buf)
            && n > 12
        {
            packets += 1;
        }
    }
    assert!(packets > 100, "{packets} RTP packets in 3 s");
    // The carrier hangs up; the BYE comes over TLS.
    let bye = phone.expect_request("BYE", Duration::from_secs(20));
    phone.send(&response(&bye, 200, "OK", "", None));
    drop(customer);
    let run = caller.wait(Duration::from_secs(20));
    assert!(run.success, "{}", run.report());
    let calls = server.calls(1, Duration::from_secs(10));
    assert_eq!(calls.len(), 1);
    let rows = server.rows(
        "SELECT agent, end_cause, CASE WHEN answered_at_ms IS NOT NULL THEN '1' ELSE '0' END FROM calls",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(
        rows[0],
        vec![
            Some("1001".to_string()),
            Some("caller_hangup".into()),
            Some("1".into())
        ]
    );
    // The registration was recorded with its transport; closing the connection takes it away.
    drop(phone);
    let t0 = Instant::now();
    loop {
        let rows = server.rows(
            "SELECT event, transport FROM registration_events ORDER BY id",
            2,
            Duration::from_secs(5),
        );
        if rows.len() >= 2 {
            assert_eq!(rows[0], vec![Some("registered".into()), Some("TLS".into())]);
            assert_eq!(rows[1][0].as_deref(), Some("connection_closed"));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
