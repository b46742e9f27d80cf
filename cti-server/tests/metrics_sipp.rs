//! `/metrics`: the page parses as the Prometheus text format (read back with the Prometheus
//! project's own parser, Python `prometheus_client`), and its figures move during a sipp call:
//! a carrier calls an agent's phone (both sipp), the call is counted active while it lasts,
//! then ended with its cause; SIP messages, RTP packets both ways, the recording's bytes and
//! the store writer's batches are counted.

mod common;

use common::{Server, TonePeer, probe_agent, probe_call};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Samples by `name{label="value",...}` (labels sorted), as the Python parser read them.
fn scrape(server: &Server) -> BTreeMap<String, f64> {
    use std::io::{Read, Write};
    let (code, headers, body) = server.http_get_raw("/metrics", &[]);
    assert_eq!(code, 200);
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
        "{ctype}"
    );
    let parser = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, s.value))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", parser])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the test command installs prometheus-client)");
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the Prometheus parser refused /metrics: {err}\n{}",
        String::from_utf8_lossy(&body)
    );
    out.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse::<f64>().expect("a number")))
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", m.keys().collect::<Vec<_>>()))
}

fn wait_for(server: &Server, what: &str, ok: impl Fn(&BTreeMap<String, f64>) -> bool) {
    let t0 = Instant::now();
    loop {
        let m = scrape(server);
        if ok(&m) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{what}: {m:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn metrics_parse_and_move_during_a_sipp_call() {
    // JSON logs too: the call's lines name it and its agent.
    let server = Server::start(&["log.json=true"]);
    let before = scrape(&server);
    // Every family is there from the start, with the ACD's queues and agent states.
    assert_eq!(get(&before, "cti_calls_active{direction=\"inbound\"}"), 0.0);
    assert_eq!(get(&before, "cti_queue_waiting{queue=\"sales\"}"), 0.0);
    assert_eq!(
        get(&before, "cti_queue_longest_wait_seconds{queue=\"service\"}"),
        0.0
    );
    assert_eq!(get(&before, "cti_agents{state=\"available\"}"), 0.0);
    assert_eq!(get(&before, "cti_rtp_packets_total{direction=\"in\"}"), 0.0);
    assert_eq!(get(&before, "cti_websocket_clients{}"), 0.0);

    let (agent, agent_media) = probe_agent(&server, "1001");
    // Registering logged the agent in.
    wait_for(&server, "the agent is available", |m| {
        get(m, "cti_agents{state=\"available\"}") == 1.0
            && get(
                m,
                "cti_sip_requests_total{direction=\"in\",method=\"REGISTER\"}",
            ) >= 2.0
    });
    let (caller, caller_media, target) = probe_call(&server, "1001");
    let customer = TonePeer::tone(caller_media, target.expect("answered"), 440.0);
    let agent_target = common::server_media(&agent, Duration::from_secs(10)).expect("agent SDP");
    let staff = TonePeer::tone(agent_media, agent_target, 1000.0);
    wait_for(&server, "the call is active", |m| {
        get(m, "cti_calls_active{direction=\"inbound\"}") == 1.0
            && get(m, "cti_media_legs{}") >= 2.0
    });
    let run = caller.wait(Duration::from_secs(30));
    assert!(run.success, "{}", run.report());
    drop((customer, staff));
    wait_for(&server, "the call is counted as ended", |m| {
        get(m, "cti_calls_active{direction=\"inbound\"}") == 0.0
            && m.get("cti_calls_total{direction=\"inbound\",end_cause=\"caller_hangup\"}")
                == Some(&1.0)
            && m.get("cti_recording_bytes_total{}")
                .is_some_and(|b| *b > 40_000.0)
    });
    let after = scrape(&server);
    let moved = |key: &str, by: f64| {
        let (a, b) = (before.get(key).copied().unwrap_or(0.0), get(&after, key));
        assert!(b - a >= by, "{key}: {a} -> {b}");
    };
    moved("cti_calls_started_total{}", 1.0);
    moved(
        "cti_sip_requests_total{direction=\"in\",method=\"INVITE\"}",
        1.0,
    );
    moved(
        "cti_sip_requests_total{direction=\"out\",method=\"INVITE\"}",
        1.0,
    );
    moved(
        "cti_sip_requests_total{direction=\"in\",method=\"BYE\"}",
        1.0,
    );
    moved(
        "cti_sip_responses_total{class=\"2xx\",direction=\"out\",method=\"INVITE\"}",
        1.0,
    );
    moved(
        "cti_sip_responses_total{class=\"2xx\",direction=\"in\",method=\"INVITE\"}",
        1.0,
    );
    // About 8 s of 20 ms packets each way on each leg.
    moved("cti_rtp_packets_total{direction=\"in\"}", 500.0);
    moved("cti_rtp_packets_total{direction=\"out\"}", 500.0);
    moved("cti_rtp_jitter_seconds_count{}", 1.0);
    moved("cti_db_write_seconds_count{}", 1.0);
    assert_eq!(get(&after, "cti_media_legs{}"), 0.0);
    assert_eq!(get(&after, "cti_db_write_failures_total{}"), 0.0);
    assert_eq!(get(&after, "cti_recording_failures_total{}"), 0.0);
    let run = agent.wait(Duration::from_secs(10));
    assert!(run.success, "{}", run.report());

    // Every log line is a JSON object; the call's end carries the call's span with its key
    // and agent.
    let log = server.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ended = lines
        .iter()
        .find(|l| l["fields"]["message"] == "call ended")
        .unwrap_or_else(|| panic!("no call ended line in {log}"));
    assert_eq!(ended["span"]["name"], "call", "{ended}");
    assert_eq!(ended["span"]["agent"], "1001", "{ended}");
    assert!(
        ended["span"]["key"].as_str().is_some_and(|k| !k.is_empty()),
        "{ended}"
    );
    assert_eq!(ended["fields"]["cause"], "caller_hangup", "{ended}");
}
