//! A third-party browser SIP client over WSS (issue 9): JsSIP (npm) in Debian's Chromium,
//! driven by Playwright (`tests/browser/jssip.mjs`), registers as agent 1001 over
//! `wss://localhost:PORT/sip` with the server's self-signed certificate accepted (pinned by
//! its public key, as an admin who checked the fingerprint would), receives a call from a sipp
//! carrier and answers. The server's leg towards the browser is WebRTC (ICE-lite, DTLS-SRTP,
//! Opus), bridged with the carrier's G.711. Audio is measured both ways: the browser's WebRTC
//! statistics show packets sent and received, and the carrier hears the browser's microphone
//! tone. JsSIP hangs up with a BYE over WSS; the carrier gets the BYE and the call record has
//! the agent and the end.

mod common;

use common::{Driver, PROBE_HZ, Server, TonePeer, hears, probe_call_server, repo_root, tone_file};
use std::time::Duration;

const CUSTOMER: f64 = PROBE_HZ[0];
const BROWSER: f64 = PROBE_HZ[2];

#[test]
fn jssip_registers_over_wss_and_takes_a_call_with_audio_both_ways() {
    let shots = repo_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let server = Server::start(&["http.tls_listen=127.0.0.1:0"]);
    let https = format!("https://localhost:{}", server.https.unwrap().port());
    let cert = server.dir.path().join("data/tls/self-signed.crt");
    let wav = server.dir.path().join("browser-voice.wav");
    tone_file(&wav, BROWSER, "0.5");
    let mut browser = Driver::start(
        "jssip.mjs",
        &[
            ("HTTPS", https.as_str().as_ref()),
            ("CERT", cert.as_os_str()),
            ("EXT", "1001".as_ref()),
            ("PASSWORD", "demo1001".as_ref()),
            ("DOMAIN", "cti.local".as_ref()),
            ("WAV", wav.as_os_str()),
            ("SHOTS", shots.as_os_str()),
        ],
    );
    let step = browser.expect_or("registered", Duration::from_secs(60), || {
        server.log_tail(80)
    });
    assert!(step.get("message").is_none(), "{step}");
    let reg = server.rows(
        "SELECT extension, transport FROM registration_events WHERE event = 'registered'",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(reg[0], vec![Some("1001".into()), Some("WSS".into())]);

    // A carrier calls agent 1001: the INVITE goes to JsSIP over its WebSocket.
    let (caller, media, target) =
        probe_call_server(&server, "1001", "4930555010", "caller_probe_hung_up.xml");
    let target = target.unwrap_or_else(|| panic!("JsSIP did not answer\n{}", server.log_tail(80)));
    let customer = TonePeer::tone(media, target, CUSTOMER);
    let talking = browser.expect_or("talking", Duration::from_secs(30), || server.log_tail(80));
    let stats = &talking["stats"];
    assert!(
        stats["sent"].as_u64().unwrap_or(0) > 50 && stats["received"].as_u64().unwrap_or(0) > 50,
        "browser statistics: {talking}"
    );
    hears(
        &customer,
        BROWSER,
        "the carrier hears the browser's microphone",
    );
    browser.go_on();
    let ended = browser.expect_or("ended", Duration::from_secs(20), || server.log_tail(80));
    assert!(
        ended["cause"].as_str().unwrap_or("").contains("Terminated"),
        "{ended}"
    );
    let done = browser.expect("done", Duration::from_secs(20));
    assert_eq!(done["problems"], serde_json::json!([]), "{done}");
    drop(customer);
    let run = caller.wait(Duration::from_secs(20));
    assert!(run.success, "the carrier got the BYE: {}", run.report());
    let rows = server.rows(
        "SELECT agent, end_cause, ended_by, CASE WHEN answered_at_ms IS NOT NULL THEN '1' ELSE '0' END FROM calls",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(
        rows[0],
        vec![
            Some("1001".to_string()),
            Some("agent_hangup".into()),
            Some("agent".into()),
            Some("1".into())
        ]
    );
    let legs = server.rows(
        "SELECT side, codec, CAST(packets_received AS TEXT) FROM call_legs ORDER BY side",
        2,
        Duration::from_secs(5),
    );
    assert_eq!(legs[0][0].as_deref(), Some("agent"));
    assert_eq!(legs[0][1].as_deref(), Some("opus"), "{legs:?}");
    assert!(
        legs[0][2].as_deref().unwrap().parse::<u64>().unwrap() > 100,
        "{legs:?}"
    );
}
