//! Acceptance tests for the outbound trunk, driven by sipp (Debian `sip-tester` 3.6.1): a
//! carrier (sipp UAC, `caller_*.xml`) dials an external number, the server sends the call to
//! the trunk (a sipp UAS), answers its digest challenge (RFC 3261 §22.2) with a second INVITE,
//! and bridges the call.
//!
//! `trunk_uas_auth.xml` checks the credentials with sipp's own `verifyauth`; it was checked
//! sipp-to-sipp (a sipp UAC with `[authentication]`: right password passes, a wrong one fails
//! the scenario), so that a failure here is the server's.

mod common;

use common::{Server, SippChild, SippRun, free_port, spawn_sipp};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: each runs a server and two sipps with media on a 2-core machine.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const NUMBER: &str = "+15551234567";

/// Starts the trunk (a sipp UAS running `scenario` for one call) on a free port.
fn trunk(scenario: &str) -> (SippChild, u16) {
    trunk_with(scenario, &[])
}

/// [`trunk`] with more sipp arguments (e.g. `-t t1` for TCP).
fn trunk_with(scenario: &str, extra: &[&str]) -> (SippChild, u16) {
    let port = free_port();
    let mp = free_port().to_string();
    let mut args = vec!["-m", "1", "-mp", &mp, "-rtp_echo"];
    args.extend(extra);
    let mut uas = spawn_sipp(None, scenario, port, &args);
    // Let the UAS bind its port before anyone calls.
    std::thread::sleep(Duration::from_millis(500));
    assert!(uas.is_running(), "trunk UAS {scenario} exited at once");
    (uas, port)
}

/// A server whose trunk is sipp at `port`, in domain trunk.example, with `extra` settings.
fn server(port: u16, extra: &[&str]) -> Server {
    let mut sets = vec![
        "trunk.host=127.0.0.1".to_string(),
        format!("trunk.port={port}"),
        "trunk.domain=trunk.example".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    Server::start(&sets)
}

/// The carrier calls `NUMBER` once with `scenario` and waits for it.
fn call(server: &Server, scenario: &str) -> SippRun {
    let mp = free_port().to_string();
    spawn_sipp(
        Some(server.sip),
        scenario,
        free_port(),
        &["-s", NUMBER, "-m", "1", "-mp", &mp],
    )
    .wait(Duration::from_secs(120))
}

fn log_tail(server: &Server) -> String {
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn assert_one_call(server: &Server, who: &str, run: &SippRun) {
    assert!(
        run.success && run.totals() == (1, 0),
        "{who} failed\n{}\nserver log:\n{}",
        run.report(),
        log_tail(server)
    );
}

/// Stops the server (its store writer flushes on the way out) and reads the call records:
/// (dialed, agent, end_cause).
fn call_records(mut server: Server) -> Vec<(String, Option<String>, Option<String>)> {
    server.terminate();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.dir.path().join("data/cti.db").display()
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let pool = sqlx::SqlitePool::connect(&url).await.expect("open cti.db");
            sqlx::query_as("SELECT dialed, agent, end_cause FROM calls ORDER BY id")
                .fetch_all(&pool)
                .await
                .expect("read calls")
        })
}

#[test]
fn rfc3261_22_2_trunk_challenge_is_answered_and_the_call_bridged() {
    let _g = serial();
    let (uas, port) = trunk("trunk_uas_auth.xml");
    let server = server(
        port,
        &["trunk.username=trunkuser", "trunk.password=trunkpass"],
    );
    let caller = call(&server, "caller_basic.xml");
    assert_one_call(&server, "caller", &caller);
    let trunk = uas.wait(Duration::from_secs(30));
    assert_one_call(&server, "trunk (verifyauth)", &trunk);
    let log = server.log_text();
    assert!(
        log.contains("retrying with credentials"),
        "server log:\n{}",
        log_tail(&server)
    );
    assert_eq!(
        call_records(server),
        vec![(NUMBER.to_string(), None, Some("caller_hangup".to_string()))],
        "a trunk call has no agent"
    );
}

/// The same over TCP (`trunk.transport = "tcp"`): the INVITE, its authenticated retry, the
/// ACK and the BYE all travel on the connection the server opens to the trunk.
#[test]
fn a_tcp_trunk_is_reached_over_tcp_with_credentials() {
    let _g = serial();
    let (uas, port) = trunk_with("trunk_uas_auth.xml", &["-t", "t1", "-max_socket", "1000"]);
    let server = server(
        port,
        &[
            "trunk.transport=tcp",
            "trunk.username=trunkuser",
            "trunk.password=trunkpass",
        ],
    );
    let caller = call(&server, "caller_basic.xml");
    assert_one_call(&server, "caller", &caller);
    let trunk = uas.wait(Duration::from_secs(30));
    assert_one_call(&server, "trunk over TCP (verifyauth)", &trunk);
    assert_eq!(
        call_records(server),
        vec![(NUMBER.to_string(), None, Some("caller_hangup".to_string()))]
    );
}

#[test]
fn trunk_challenge_without_credentials_gives_the_caller_480() {
    let _g = serial();
    let (uas, port) = trunk("trunk_uas_challenge_only.xml");
    let server = server(port, &[]);
    let caller = call(&server, "caller_expect_480.xml");
    assert_one_call(&server, "caller", &caller);
    let trunk = uas.wait(Duration::from_secs(30));
    assert_one_call(&server, "trunk (no second INVITE)", &trunk);
    assert_eq!(
        call_records(server),
        vec![(
            NUMBER.to_string(),
            None,
            Some("agent_rejected_401".to_string())
        )]
    );
}

#[test]
fn trunk_refusing_our_credentials_403_reaches_the_caller() {
    let _g = serial();
    let (uas, port) = trunk("trunk_uas_auth.xml");
    let server = server(
        port,
        &["trunk.username=trunkuser", "trunk.password=wrongpass"],
    );
    let caller = call(&server, "caller_expect_403.xml");
    assert_one_call(&server, "caller", &caller);
    // The trunk scenario fails by design on bad credentials (after answering 403).
    let trunk = uas.wait(Duration::from_secs(30));
    assert!(!trunk.success, "verifyauth accepted a wrong password");
    assert_eq!(
        call_records(server),
        vec![(
            NUMBER.to_string(),
            None,
            Some("agent_rejected_403".to_string())
        )]
    );
}
