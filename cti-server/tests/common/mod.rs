//! Shared harness for end-to-end tests: the real `cti-server` binary on free loopback ports,
//! and real peers (sipp) driving it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate lives in the workspace")
        .to_path_buf()
}

/// A running server; killed (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    /// HTTPS (and WSS), when the test turned it on (`http.tls_listen=127.0.0.1:0`).
    pub https: Option<SocketAddr>,
    /// SIP over TLS, when the test turned it on (`sip.tls_listen=127.0.0.1:0`).
    pub sips: Option<SocketAddr>,
    /// The `cti-server tls certificate ...` line, when TLS is on.
    pub tls_line: Option<String>,
    /// The server's database: SQLite in its data directory, or a database of its own on the
    /// PostgreSQL server `CTI_TEST_POSTGRES` names.
    pub db_url: String,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Server {
    /// Starts the server with the default config, loopback ports picked by the OS, a fresh
    /// data directory, and `extra` `--set` overrides.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        // Four ports a call (two legs, RTP and RTCP each): room for a few hundred calls.
        let (lo, hi) = free_port_range(1600);
        let mut sets = vec![
            "sip.listen=127.0.0.1:0".to_string(),
            "http.listen=127.0.0.1:0".to_string(),
            // Off unless the test turns them on (the default config listens on 8443, 5061).
            "http.tls_listen=".to_string(),
            "sip.tls_listen=".to_string(),
            format!("storage.data_dir={}", dir.path().join("data").display()),
            format!(
                "storage.recordings_dir={}",
                dir.path().join("rec").display()
            ),
            format!("media.rtp_ports={lo}-{hi}"),
            format!("voicemail.dir={}", dir.path().join("voicemail").display()),
        ];
        let chosen = extra
            .iter()
            .find_map(|e| e.strip_prefix("storage.database_url="))
            .map(str::to_string);
        let db_url = match (chosen, postgres_admin_url()) {
            (Some(url), _) => url,
            (None, Some(admin)) => {
                let url = new_postgres_database(&admin);
                sets.push(format!("storage.database_url={url}"));
                url
            }
            (None, None) => format!("sqlite://{}", dir.path().join("data/cti.db").display()),
        };
        sets.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cti-server"));
        cmd.current_dir(repo_root())
            .arg("--config")
            .arg(repo_root().join("config/cti.toml"))
            .arg("--log-level")
            .arg(std::env::var("CTI_TEST_LOG").unwrap_or_else(|_| "info".into()));
        for s in &sets {
            cmd.arg("--set").arg(s);
        }
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawning cti-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let tls_line = std::sync::Arc::new(std::sync::Mutex::new(None));
        let tls_seen = tls_line.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("cti-server ready ") {
                    let _ = tx.send(rest.to_string());
                } else if line.starts_with("cti-server tls certificate ") {
                    *tls_seen.lock().unwrap() = Some(line);
                }
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(r) => r,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not become ready; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let field = |name: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in ready line {ready:?}"))
        };
        let optional = |name: &str| -> Option<SocketAddr> {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(name))
                .and_then(|v| v.parse().ok())
        };
        let tls_line = tls_line.lock().unwrap().clone();
        Server {
            sip: field("sip="),
            http: field("http="),
            https: optional("https="),
            sips: optional("sips="),
            tls_line,
            db_url,
            child,
            dir,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }

    /// GET over plain HTTP; returns (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http("GET", path, None, None)
    }
}

impl Server {
    /// SIGKILL: the server dies at once, as in a crash or a power cut.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind")
        .port()
}

/// A loopback port free for both UDP and TCP a moment ago.
pub fn free_port() -> u16 {
    loop {
        let p = free_udp_port();
        // A port given to sipp as its media port (-mp) takes the three above it too (RTCP,
        // video RTP and RTCP): all four must be free, or sipp fails to bind one of them
        // (seen once: the caller's video port was the agent's SIP port).
        let free = |q: u16| {
            UdpSocket::bind(("127.0.0.1", q)).is_ok() && TcpListener::bind(("127.0.0.1", q)).is_ok()
        };
        if p <= 65_531 && (p..p + 4).all(free) {
            return p;
        }
    }
}

/// A range of `n` ports starting at a random place in 40000–59999 (media ports for a test;
/// the engine skips ports another process holds).
pub fn free_port_range(n: u16) -> (u16, u16) {
    let slots = (20_000 / n.max(1)).max(1);
    let start = 40_000 + (rand_u16() % slots) * n;
    (start, start + n - 1)
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (t % 65_521) as u16
}

/// Result of a sipp run.
pub struct SippRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

/// Runs sipp against `server` with a scenario from `tests/sipp/` (or an embedded one given as
/// `-sn name` in `args`). Work directory is a fresh temp dir; `-trace_err` files land there.
pub fn sipp(server: SocketAddr, scenario: Option<&str>, args: &[&str]) -> SippRun {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(&dir).arg(server.to_string());
    if let Some(s) = scenario {
        cmd.arg("-sf").arg(repo_root().join("tests/sipp").join(s));
    }
    cmd.args([
        "-i",
        "127.0.0.1",
        "-p",
        &free_port().to_string(),
        "-buff_size",
        "4194304",
        "-nostdin",
        "-trace_err",
        "-timeout",
        "60s",
    ]);
    cmd.args(args);
    let out = cmd
        .output()
        .expect("running sipp (apt-get install sip-tester)");
    SippRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    }
}

impl SippRun {
    /// The SIP messages sipp traced (`-trace_msg`), in and out.
    pub fn messages(&self) -> String {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with("_messages.log") {
                    all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        all
    }

    /// A readable report for assertion messages.
    pub fn report(&self) -> String {
        let mut errs = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with("_errors.log") {
                    errs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        let tail = |s: &str| {
            s.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "sipp stdout (tail):\n{}\nsipp stderr:\n{}\nerrors log:\n{}",
            tail(&self.stdout),
            tail(&self.stderr),
            tail(&errs)
        )
    }

    /// The "Successful call" and "Failed call" totals from sipp's final screen.
    pub fn totals(&self) -> (u64, u64) {
        let grab = |label: &str| {
            self.stdout
                .lines()
                .rfind(|l| l.contains(label))
                .and_then(|l| l.split('|').nth(2))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        (grab("Successful call"), grab("Failed call"))
    }
}

// ------------------------------------------------------------------------------------------
// Background sipp peers (agent phones) and agent registration, for the B2BUA tests.
// ------------------------------------------------------------------------------------------

/// A sipp started in the background (an agent phone, or a caller the test talks to while it
/// runs); killed on drop.
pub struct SippChild {
    child: Option<Child>,
    /// The working directory: `-trace_*` files, `stdout.txt`, `stderr.txt`, and a `pcap` link.
    pub dir: PathBuf,
}

/// Starts sipp with the scenario `tests/sipp/<scenario>` on `127.0.0.1:local_port`, towards
/// `remote` (None: a UAS waiting for calls), without waiting for it. The working directory is
/// fresh and holds a `pcap` link to `/usr/share/sip-tester` (for `play_pcap_audio=
/// "pcap/g711a.pcap"`). Pass `-mp PORT` in `args` when several sipps run at once.
pub fn spawn_sipp(
    remote: Option<SocketAddr>,
    scenario: &str,
    local_port: u16,
    args: &[&str],
) -> SippChild {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let _ = std::os::unix::fs::symlink("/usr/share/sip-tester", dir.join("pcap"));
    let mut cmd = Command::new("sipp");
    cmd.current_dir(&dir);
    if let Some(r) = remote {
        cmd.arg(r.to_string());
    }
    cmd.arg("-sf")
        .arg(repo_root().join("tests/sipp").join(scenario))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &local_port.to_string(),
            "-buff_size",
            "4194304",
            "-nostdin",
            "-trace_err",
            "-trace_msg",
            "-timeout",
            "60s",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("stdout.txt")).expect("stdout file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.txt")).expect("stderr file"),
        ));
    let child = cmd
        .spawn()
        .expect("running sipp (apt-get install sip-tester)");
    SippChild {
        child: Some(child),
        dir,
    }
}

impl SippChild {
    /// True while sipp runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for sipp to exit (killing it then: `success` is false) and
    /// returns its result.
    pub fn wait(mut self, timeout: Duration) -> SippRun {
        let mut child = self.child.take().expect("not waited yet");
        let deadline = std::time::Instant::now() + timeout;
        let mut success = false;
        let mut killed = false;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => {
                    success = st.success();
                    break;
                }
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    killed = true;
                    break;
                }
            }
        }
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let mut stderr = read("stderr.txt");
        if killed {
            stderr.push_str(&format!("\n(sipp killed: still running after {timeout:?})"));
        }
        SippRun {
            success,
            stdout: read("stdout.txt"),
            stderr,
            dir: self.dir.clone(),
        }
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs sipp to completion (at most two minutes) from `127.0.0.1:local_port`; see
/// [`spawn_sipp`].
pub fn sipp_at(
    remote: Option<SocketAddr>,
    scenario: &str,
    local_port: u16,
    args: &[&str],
) -> SippRun {
    spawn_sipp(remote, scenario, local_port, args).wait(Duration::from_secs(120))
}

/// Registers agent `ext` (digest, `password`) with the binding at `127.0.0.1:port`, where
/// an agent UAS started afterwards with [`spawn_sipp`] on the same port gets the calls
/// (`tests/sipp/agent_register.xml`: Expires 300, no un-REGISTER).
pub fn register_agent(server: SocketAddr, ext: &str, password: &str, port: u16) -> SippRun {
    let mp = free_port().to_string();
    sipp_at(
        Some(server),
        "agent_register.xml",
        port,
        &[
            "-s", ext, "-au", ext, "-ap", password, "-m", "1", "-mp", &mp,
        ],
    )
}

// ---- Call records in the server's database -------------------------------------------------

/// One row of `calls` joined with its two `call_legs`.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub end_cause: Option<String>,
    pub ended_by: Option<String>,
    pub agent: Option<String>,
    pub answered: bool,
    pub caller_codec: Option<String>,
    pub agent_codec: Option<String>,
    pub caller_received: i64,
    pub caller_sent: i64,
    pub agent_received: i64,
    pub agent_sent: i64,
    pub caller_jitter_ms: f64,
}

impl Server {
    pub fn database_url(&self) -> String {
        self.db_url.clone()
    }

    /// The call records, waiting (up to `wait`) until there are at least `expected`: the
    /// server writes them in batches off the call path.
    pub fn calls(&self, expected: usize, wait: Duration) -> Vec<CallRow> {
        use sqlx::Row;
        poll_rows(
            &self.database_url(),
            "SELECT c.end_cause, c.ended_by, c.agent,
                    CASE WHEN c.answered_at_ms IS NOT NULL THEN 1 ELSE 0 END AS answered,
                    a.codec AS caller_codec, b.codec AS agent_codec,
                    a.packets_received AS caller_received, a.packets_sent AS caller_sent,
                    b.packets_received AS agent_received, b.packets_sent AS agent_sent,
                    a.jitter_ms AS caller_jitter
             FROM calls c
             JOIN call_legs a ON a.call_id = c.id AND a.side = 'caller'
             JOIN call_legs b ON b.call_id = c.id AND b.side = 'agent'
             ORDER BY c.offered_at_ms",
            expected,
            wait,
            |r| CallRow {
                end_cause: r.get("end_cause"),
                ended_by: r.get("ended_by"),
                agent: r.get("agent"),
                answered: r.get::<i64, _>("answered") != 0,
                caller_codec: r.get("caller_codec"),
                agent_codec: r.get("agent_codec"),
                caller_received: r.get("caller_received"),
                caller_sent: r.get("caller_sent"),
                agent_received: r.get("agent_received"),
                agent_sent: r.get("agent_sent"),
                caller_jitter_ms: r.get("caller_jitter"),
            },
        )
    }
}

impl Server {
    /// Rows of `sql` as text (write the query with `CAST(.. AS TEXT)` for numbers), waiting
    /// (up to `wait`) until there are at least `expected` rows.
    pub fn rows(&self, sql: &str, expected: usize, wait: Duration) -> Vec<Vec<Option<String>>> {
        rows_at(&self.database_url(), sql, expected, wait)
    }

    /// Runs a write on the server's database from outside, as time passing would (a deadline
    /// moved into the past); the rows changed.
    pub fn execute(&self, sql: &str) -> u64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let pool = any_pool(&self.database_url()).await;
            let n = sqlx::query(sql)
                .execute(&pool)
                .await
                .expect("statement")
                .rows_affected();
            pool.close().await;
            n
        })
    }

    /// An HTTP request with a bearer token and an optional JSON body; (status, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let body = body.unwrap_or("");
        let ctype = if body.is_empty() {
            None
        } else {
            Some("application/json")
        };
        self.http_bytes(method, path, token, body.as_bytes(), ctype)
    }

    /// An HTTP request with any body; (status, body).
    pub fn http_bytes(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        ctype: Option<&str>,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).expect("http connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let ctype = ctype
            .map(|c| format!("Content-Type: {c}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}{ctype}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Server {
    /// A GET with extra request headers; the status, the response headers (names in lower
    /// case) and the body as bytes.
    pub fn http_get_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).expect("http connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&out[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let hdrs = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, hdrs, out[split + 4..].to_vec())
    }
}

/// A carrier call (`caller_media_probe.xml`, 8 s) to `number` whose media end is a socket the
/// test owns: the sipp child, that socket, and the server's media address from the SDP answer
/// (`None` when the call was not answered within 10 s).
pub fn probe_call(server: &Server, number: &str) -> (SippChild, UdpSocket, Option<SocketAddr>) {
    probe_call_for(server, number, Duration::from_secs(8))
}

/// [`probe_call`] lasting `talk` after the answer.
pub fn probe_call_for(
    server: &Server,
    number: &str,
    talk: Duration,
) -> (SippChild, UdpSocket, Option<SocketAddr>) {
    let d = talk.as_millis().to_string();
    probe_call_with(server, number, "caller_media_probe.xml", &["-d", &d])
}

/// A carrier call from `from_user` (`caller_probe_hung_up.xml`: it waits for the server's
/// BYE) with its media on a socket of ours; as [`probe_call`].
pub fn probe_call_server(
    server: &Server,
    number: &str,
    from_user: &str,
    scenario: &str,
) -> (SippChild, UdpSocket, Option<SocketAddr>) {
    probe_call_with(server, number, scenario, &["-key", "from_user", from_user])
}

fn probe_call_with(
    server: &Server,
    number: &str,
    scenario: &str,
    extra: &[&str],
) -> (SippChild, UdpSocket, Option<SocketAddr>) {
    let media = UdpSocket::bind("127.0.0.1:0").expect("bind caller media");
    let key = media.local_addr().unwrap().port().to_string();
    let mp = free_port().to_string();
    let mut args = vec![
        "-s", number, "-m", "1", "-mp", &mp, "-key", "rtp_port", &key,
    ];
    args.extend_from_slice(extra);
    let caller = spawn_sipp(Some(server.sip), scenario, free_port(), &args);
    let target = server_media(&caller, Duration::from_secs(10));
    (caller, media, target)
}

/// Agent `ext` registers, then answers one call with its media on a socket of ours.
pub fn probe_agent(server: &Server, ext: &str) -> (SippChild, UdpSocket) {
    let port = free_port();
    let reg = register_agent(server.sip, ext, &format!("demo{ext}"), port);
    assert!(
        reg.success,
        "agent {ext} did not register\n{}",
        reg.report()
    );
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = media.local_addr().unwrap().port().to_string();
    let mp = free_port().to_string();
    let mut uas = spawn_sipp(
        None,
        "agent_uas_probe.xml",
        port,
        &["-m", "1", "-mp", &mp, "-key", "rtp_port", &key],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(uas.is_running(), "agent phone exited at once");
    (uas, media)
}

/// The server's media address a `*_probe` or `supervisor_*` scenario wrote to
/// `server_media.txt` ("address port", from the SDP) once its call was up; `None` if it did
/// not within `wait`.
pub fn server_media(sipp: &SippChild, wait: Duration) -> Option<SocketAddr> {
    let file = sipp.dir.join("server_media.txt");
    let t0 = std::time::Instant::now();
    while t0.elapsed() < wait {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut it = text.split_whitespace();
            if let (Some(a), Some(p)) = (it.next(), it.next()) {
                return Some(format!("{a}:{p}").parse().expect("address in SDP"));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Tones the [`TonePeer`]s tell apart in what they receive (multiples of 50 Hz: whole
/// bins of a 160-sample frame, so one tone does not leak into another's measure).
pub const PROBE_HZ: [f64; 3] = [600.0, 1000.0, 1400.0];

/// The amplitude of `hz` in a frame (Goertzel): about the tone's peak for a tone alone.
pub fn tone_amplitude(frame: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in frame {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / frame.len() as f64
}

/// One party's voice, as the test's own RTP end: a tone (1 kHz unless told) in 20 ms PCMU
/// packets sent on an absolute clock (a sender drifting late would starve the jitter
/// buffers), keys as RFC 4733 events (payload type 101) when asked, and a note of every
/// packet that comes back: whether it is loud, and how much of each [`PROBE_HZ`] tone it
/// carries. Silence comes back as packets too (a bridge whose parties do not hear each other
/// sends those), so only the tones' energy says whose audio went through.
pub struct TonePeer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    heard: std::sync::Arc<std::sync::Mutex<Vec<Heard>>>,
    keys: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<char>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Heard {
    at: std::time::Instant,
    loud: bool,
    /// Not silence: an RMS above 300 (hold music is about 1,500).
    audible: bool,
    tones: [f64; PROBE_HZ.len()],
}

impl TonePeer {
    pub fn start(socket: UdpSocket, target: SocketAddr) -> TonePeer {
        TonePeer::tone(socket, target, 1000.0)
    }

    /// Sends a tone of `hz`.
    pub fn tone(socket: UdpSocket, target: SocketAddr, hz: f64) -> TonePeer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keys = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let (s, h, k) = (stop.clone(), heard.clone(), keys.clone());
        let thread = std::thread::spawn(move || {
            socket
                .set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            let start = std::time::Instant::now();
            let mut buf = [0u8; 2048];
            let mut i = 0u32;
            let mut seq = 0u16;
            // A key being sent: (event code, first packet's tick, packets sent).
            let mut key: Option<(u8, u32, u32)> = None;
            while !s.load(Ordering::Relaxed) {
                if key.is_none()
                    && let Some(c) = k.lock().unwrap().pop_front()
                {
                    let code = media::codec::telephone_event::Digit::from_char(c)
                        .expect("a DTMF key")
                        .code();
                    key = Some((code, i, 0));
                }
                let mut pkt = vec![0x80, 0x00];
                match key.as_mut() {
                    Some((code, first, sent)) => {
                        // 5 packets of a growing event, then its end 3 times (RFC 4733 §2.5.1.4).
                        let end = *sent >= 5;
                        pkt[1] = 101 | if *sent == 0 { 0x80 } else { 0 };
                        pkt.extend_from_slice(&seq.to_be_bytes());
                        pkt.extend_from_slice(&(first.wrapping_mul(160)).to_be_bytes());
                        pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                        let duration = (160 * (*sent + 1).min(6)) as u16;
                        pkt.extend_from_slice(
                            &media::codec::telephone_event::EventPayload {
                                event: *code,
                                end,
                                volume: 10,
                                duration,
                            }
                            .to_bytes(),
                        );
                        *sent += 1;
                        if *sent >= 8 {
                            key = None;
                        }
                    }
                    None => {
                        pkt.extend_from_slice(&seq.to_be_bytes());
                        pkt.extend_from_slice(&(i.wrapping_mul(160)).to_be_bytes());
                        pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
                        pkt.extend((0..160u32).map(|n| {
                            let t = f64::from(i.wrapping_mul(160).wrapping_add(n)) / 8000.0;
                            let x = 8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin();
                            media::codec::g711::ulaw_encode(x as i16)
                        }));
                    }
                }
                let _ = socket.send_to(&pkt, target);
                seq = seq.wrapping_add(1);
                i += 1;
                let next = start + Duration::from_millis(20 * u64::from(i));
                while std::time::Instant::now() < next {
                    while let Ok((n, _)) = socket.recv_from(&mut buf) {
                        if n != 12 + 160 || buf[0] >> 6 != 2 {
                            continue;
                        }
                        let frame: Vec<i16> = buf[12..n]
                            .iter()
                            .map(|&b| media::codec::g711::ulaw_decode(b))
                            .collect();
                        let energy: f64 = frame.iter().map(|&x| f64::from(x).powi(2)).sum();
                        // A tone's RMS is about 5,700; fades and concealment are quieter.
                        let loud = (energy / 160.0).sqrt() > 2000.0;
                        let tones = PROBE_HZ.map(|hz| tone_amplitude(&frame, hz));
                        h.lock().unwrap().push(Heard {
                            at: std::time::Instant::now(),
                            loud,
                            audible: (energy / 160.0).sqrt() > 300.0,
                            tones,
                        });
                    }
                }
            }
        });
        TonePeer {
            stop,
            heard,
            keys,
            thread: Some(thread),
        }
    }

    /// Packets that came back since `since`: (all, carrying the tone).
    pub fn heard_since(&self, since: std::time::Instant) -> (u32, u32) {
        let heard = self.heard.lock().unwrap();
        let after = heard.iter().filter(|h| h.at >= since);
        after.fold((0, 0), |(n, l), h| (n + 1, l + u32::from(h.loud)))
    }

    /// Packets that came back between `from` and `to`: (all, carrying the [`PROBE_HZ`]
    /// tone `hz`, at an amplitude of at least 1,000 of the 8,000 sent).
    pub fn heard_tone(
        &self,
        hz: f64,
        from: std::time::Instant,
        to: std::time::Instant,
    ) -> (u32, u32) {
        let k = PROBE_HZ
            .iter()
            .position(|&p| p == hz)
            .expect("one of PROBE_HZ");
        let heard = self.heard.lock().unwrap();
        let window = heard.iter().filter(|h| h.at >= from && h.at < to);
        window.fold((0, 0), |(n, t), h| {
            (n + 1, t + u32::from(h.tones[k] > 1000.0))
        })
    }

    /// What came back between `from` and `to`, a character a packet: `#` the tone `hz`,
    /// `+` other audio (music, another voice), `.` silence.
    pub fn pattern(&self, hz: f64, from: std::time::Instant, to: std::time::Instant) -> String {
        let k = PROBE_HZ
            .iter()
            .position(|&p| p == hz)
            .expect("one of PROBE_HZ");
        let heard = self.heard.lock().unwrap();
        heard
            .iter()
            .filter(|h| h.at >= from && h.at < to)
            .map(|h| match (h.tones[k] > 1000.0, h.audible) {
                (true, _) => '#',
                (false, true) => '+',
                (false, false) => '.',
            })
            .collect()
    }

    /// Sends a key as RFC 4733 events (payload type 101) in place of the tone, 160 ms.
    pub fn press(&self, key: char) {
        self.keys.lock().unwrap().push_back(key);
    }
}

impl Drop for TonePeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// [`Server::rows`] on the database at `url` (`sqlite://...` or `postgres://...`): every
/// value as text (numbers printed), NULL as `None`.
pub fn rows_at(url: &str, sql: &str, expected: usize, wait: Duration) -> Vec<Vec<Option<String>>> {
    use sqlx::Row;
    poll_rows(url, sql, expected, wait, |r| {
        (0..r.columns().len())
            .map(|i| {
                r.try_get::<Option<String>, _>(i)
                    .or_else(|_| {
                        r.try_get::<Option<i64>, _>(i)
                            .map(|v| v.map(|v| v.to_string()))
                    })
                    .or_else(|_| {
                        r.try_get::<Option<f64>, _>(i)
                            .map(|v| v.map(|v| v.to_string()))
                    })
                    .unwrap_or(None)
            })
            .collect()
    })
}

/// The PostgreSQL server the tests run against, when the environment names one
/// (`CTI_TEST_POSTGRES`: an admin URL); `None`: SQLite.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("CTI_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A new, empty database on the PostgreSQL server at `admin`; its URL.
pub fn new_postgres_database(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!(
        "cti_it_{}_{:x}",
        std::process::id(),
        rand_u16() as u32 * 65536 + rand_u16() as u32
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(admin)
            .await
            .expect("the PostgreSQL server of CTI_TEST_POSTGRES");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
    });
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A small pool on the database at `url`, either backend.
async fn any_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("open db")
}

/// Runs `sql` read-only on the database at `url` until it returns at least `expected` rows
/// or `wait` is over (the server writes in batches off the call path); each row through `map`.
fn poll_rows<T>(
    url: &str,
    sql: &str,
    expected: usize,
    wait: Duration,
    map: impl Fn(&sqlx::any::AnyRow) -> T,
) -> Vec<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool = any_pool(url).await;
        let deadline = std::time::Instant::now() + wait;
        loop {
            let rows = sqlx::query(sql).fetch_all(&pool).await.expect("query");
            let out: Vec<T> = rows.iter().map(&map).collect();
            if out.len() >= expected || std::time::Instant::now() >= deadline {
                pool.close().await;
                return out;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// A JSON body, or a panic that shows it.
pub fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

impl Server {
    /// Logs `user` in with the demo password (`demo<user>`); their session token.
    pub fn login(&self, user: &str) -> String {
        let body = format!(r#"{{"user":"{user}","password":"demo{user}"}}"#);
        let (code, text) = self.http("POST", "/api/login", None, Some(&body));
        assert_eq!(code, 200, "{user} logs in: {text}");
        json_of(&text)["token"].as_str().unwrap().to_string()
    }
}

/// A Playwright script of `tests/browser/` driving Debian's Chromium: its JSON steps as they
/// come (`{"step": ...}` lines on its stdout), and its stdin to say "go on".
pub struct Driver {
    child: Child,
    steps: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Driver {
    pub fn start(script: &str, env: &[(&str, &std::ffi::OsStr)]) -> Driver {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("node");
        // Its own process group: a failed test kills the browsers with it.
        cmd.process_group(0);
        cmd.arg(repo_root().join("tests/browser").join(script));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs the browser script (./scripts/test installs playwright-core)");
        let out = child.stdout.take().unwrap();
        let (tx, steps) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => eprintln!("browser: {line}"),
                }
            }
        });
        Driver { child, steps }
    }

    /// The next step, which must be `step`, within `wait`.
    pub fn expect(&mut self, step: &str, wait: Duration) -> serde_json::Value {
        let v = self
            .steps
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("no step {step:?} from the browser within {wait:?}"));
        assert_eq!(v["step"], step, "browser: {v:#}");
        v
    }

    /// As [`Driver::expect`], showing `context()` (the server's log, say) when the step is
    /// not the one expected.
    pub fn expect_or(
        &mut self,
        step: &str,
        wait: Duration,
        context: impl FnOnce() -> String,
    ) -> serde_json::Value {
        match self.steps.recv_timeout(wait) {
            Ok(v) if v["step"] == step => v,
            Ok(v) => panic!("browser: {v:#}\nexpected step {step:?}\n{}", context()),
            Err(_) => panic!(
                "no step {step:?} from the browser within {wait:?}\n{}",
                context()
            ),
        }
    }

    /// Lets the script go on past a step where the test measured something.
    pub fn go_on(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "next").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-9", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// What the customer gets over the next 2 s: (packets, packets carrying `hz`, the pattern).
pub fn customer_gets(peer: &TonePeer, hz: f64) -> (u32, u32, String) {
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let to = Instant::now();
    let (n, tone) = peer.heard_tone(hz, from, to);
    (n, tone, peer.pattern(hz, from, to))
}

/// `what`: at least 80 % of the customer's packets over the next 2 s carry `hz`.
pub fn hears(peer: &TonePeer, hz: f64, what: &str) -> String {
    let (n, tone, pattern) = customer_gets(peer, hz);
    assert!(
        n > 80 && tone * 10 > n * 8,
        "{what}: {tone} of {n} packets {pattern}"
    );
    pattern
}

/// `what`: fewer than 5 % of the customer's packets over the next 2 s carry `hz`.
pub fn hears_not(peer: &TonePeer, hz: f64, what: &str) -> String {
    let (n, tone, pattern) = customer_gets(peer, hz);
    assert!(
        n > 80 && tone * 20 < n,
        "{what}: {tone} of {n} packets {pattern}"
    );
    pattern
}

/// A steady tone as a browser's fake microphone: 16-bit PCM as Chromium wants it (sox).
pub fn tone_file(path: &std::path::Path, hz: f64, volume: &str) {
    let made = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(path)
        .args(["synth", "180", "sine", &hz.to_string(), "vol", volume])
        .status()
        .expect("sox runs");
    assert!(made.success());
}

/// An API call with `token` and an optional JSON body: the status and the JSON answer
/// (`Null` for an empty one).
pub fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string());
    let (code, text) = server.http(method, path, Some(token), body.as_deref());
    let v = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        json_of(&text)
    };
    (code, v)
}

/// An XLSX download (`path` with `token`) read back with calamine: its first sheet's cells
/// as text, the header row first.
pub fn xlsx_cells(server: &Server, path: &str, token: &str) -> Vec<Vec<String>> {
    use calamine::Reader;
    let (code, _, xlsx) =
        server.http_get_raw(path, &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(code, 200, "{path}");
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx)).expect("an XLSX file");
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

/// The wall clock in ms since the Unix epoch, as the server stamps records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The lead ids on the user's work list, in its order.
pub fn worklist_ids(server: &Server, token: &str) -> Vec<i64> {
    let (code, v) = call(server, "GET", "/api/worklist", token, None);
    assert_eq!(code, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect()
}

/// A TLS client connection to `addr` that trusts only the certificate(s) in the PEM file
/// `ca` and checks the server's name against `name`.
pub fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    name: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server_name)
        .map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake now, so a refused certificate shows here.
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(stream)
}

/// A status, the response headers (names in lower case) and the body.
pub type HttpResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 request over TLS (`Connection: close`).
pub fn https_request(
    addr: SocketAddr,
    ca: &Path,
    name: &str,
    head: &str,
    body: &[u8],
) -> Result<HttpResponse, String> {
    use std::io::{Read, Write};
    let mut s = tls_connect(addr, ca, name)?;
    let head = head.trim_end_matches("\r\n");
    write!(
        s,
        "{head}\r\nHost: {name}:{}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        addr.port(),
        body.len()
    )
    .map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // A peer that closes without close_notify is an error to rustls; what came is enough.
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head in {:?}", String::from_utf8_lossy(&out)))?;
    let text = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, out[split + 4..].to_vec()))
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, `AB:CD:...`.
pub fn pem_fingerprint(path: &Path) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let cert = CertificateDer::pem_file_iter(path)
        .expect("a PEM file")
        .next()
        .expect("a certificate")
        .expect("a readable certificate");
    sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
