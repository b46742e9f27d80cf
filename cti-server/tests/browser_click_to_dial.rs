//! Click-to-dial in a real browser (Debian's Chromium driven by Playwright,
//! `tests/browser/dial.mjs`), with sipp as the outbound trunk:
//!
//! agent 1001's work list has a new web lead (its first contact is due); the agent clicks
//! Call on it. The browser places the call: the trunk (a sipp UAS) gets the INVITE for the
//! lead's number in E.164 and answers, its media end being the test's own socket sending a
//! 600 Hz tone; the browser's fake microphone plays 1,400 Hz. The lead pops when the call
//! goes out. Both directions are measured: the browser's WebRTC statistics (packets both
//! ways, the customer's audio level) and the customer hearing the agent's tone. Hold gives
//! the customer hold music instead; resume brings the agent back. The agent hangs up with the
//! keyboard shortcut and wraps up with "do not call again": the number goes on the
//! do-not-call list, and typing it into the dial box is refused, in the audit log. The lead's
//! timeline has the call (outbound, by the agent, with its recording) and the contact. A
//! showroom visit is booked from the pop during the call and, later, handed over to the
//! direct-sales person from the visits table. The
//! calling-hours and other refusals are covered without a browser in `softphone_ws.rs`.
//! Screenshots go to `target/browser-screenshots/`.

mod common;

use common::{
    Driver, PROBE_HZ, Server, TonePeer, free_port, hears, hears_not, json_of, repo_root,
    server_media, spawn_sipp, tone_file,
};
use serde_json::{Value, json};
use std::net::UdpSocket;
use std::time::Duration;

const CUSTOMER: f64 = PROBE_HZ[0];
const AGENT: f64 = PROBE_HZ[2];

#[test]
fn an_agent_calls_a_lead_from_the_work_list_through_the_trunk() {
    let shots = repo_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // The trunk: a sipp UAS answering one call, its media on a socket of ours.
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = media.local_addr().unwrap().port().to_string();
    let trunk_port = free_port();
    let mp = free_port().to_string();
    let mut trunk = spawn_sipp(
        None,
        "agent_uas_probe.xml",
        trunk_port,
        &["-m", "1", "-mp", &mp, "-key", "rtp_port", &key],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(trunk.is_running(), "the trunk exited at once");

    let server = Server::start(&[
        "trunk.host=127.0.0.1",
        &format!("trunk.port={trunk_port}"),
        // Customers may be called at any hour here (the hours are tested on their own).
        "dialing.calling_hours=[]",
    ]);
    let wav = server.dir.path().join("agent-voice.wav");
    tone_file(&wav, AGENT, "0.5");

    // A new web lead of agent 1001's: on their work list, first contact due.
    let sam = server.login("9001");
    let lead = json!({ "name": "Jonas Weber", "phones": ["030 5550199"], "grade": "A", "source": "web", "owner": "1001" });
    let (code, text) = server.http("POST", "/api/leads", Some(&sam), Some(&lead.to_string()));
    assert_eq!(code, 201, "{text}");
    let lead_id = json_of(&text)["id"].as_i64().unwrap();

    let base = format!("http://{}", server.http);
    let mut browser = Driver::start(
        "dial.mjs",
        &[
            ("BASE", base.as_str().as_ref()),
            ("AGENT", "1001".as_ref()),
            ("PASSWORD", "demo1001".as_ref()),
            ("LEAD_NAME", "Jonas Weber".as_ref()),
            ("DNC_NUMBER", "030 5550199".as_ref()),
            ("WAV", wav.as_os_str()),
            ("SHOTS", shots.as_os_str()),
        ],
    );

    // The trunk answered: our socket is the customer's media end.
    let server_side = server_media(&trunk, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the trunk got no call\nserver log:\n{}", server.log_text()));
    let peer = TonePeer::tone(media, server_side, CUSTOMER);
    let talking = browser.expect("talking", Duration::from_secs(60));
    let pop = talking["pop"].as_str().unwrap_or_default();
    assert!(
        pop.contains("Calling") && pop.contains("Jonas Weber"),
        "the lead pops as the call goes out: {pop}"
    );
    assert!(
        talking["booked"]
            .as_str()
            .unwrap_or_default()
            .contains("at Showroom Mitte"),
        "a visit is booked from the pop: {talking}"
    );
    let s = &talking["stats"];
    assert!(
        s["sent"].as_u64().unwrap_or(0) > 20 && s["received"].as_u64().unwrap_or(0) > 20,
        "browser WebRTC stats: {s}"
    );
    assert!(
        s["level"].as_f64().unwrap_or(0.0) > 0.01,
        "the agent hears the customer: {s}"
    );
    hears(&peer, AGENT, "the customer hears the agent");
    browser.go_on();

    let held = browser.expect("held", Duration::from_secs(20));
    assert!(
        held["line"]
            .as_str()
            .unwrap_or_default()
            .contains("on hold"),
        "{held}"
    );
    hears_not(
        &peer,
        AGENT,
        "on hold, the customer does not hear the agent",
    );
    let (n, _, _) = common::customer_gets(&peer, AGENT);
    assert!(
        n > 80,
        "the customer gets hold music, not silence: {n} packets in 2 s"
    );
    browser.go_on();
    browser.expect("resumed", Duration::from_secs(20));
    hears(&peer, AGENT, "resumed, the customer hears the agent again");
    browser.go_on();

    let done = browser.expect("done", Duration::from_secs(60));
    assert!(
        done["status"]
            .as_str()
            .unwrap_or_default()
            .contains("you hung up"),
        "{done}"
    );
    assert!(
        done["refusal"]
            .as_str()
            .unwrap_or_default()
            .contains("do-not-call list (asked on a call: please no more calls)"),
        "{done}"
    );
    assert_eq!(done["problems"], json!([]), "browser console errors");
    let run = trunk.wait(Duration::from_secs(30));
    assert!(run.success, "the trunk's call failed\n{}", run.report());

    // The number is on the list, put there by the agent; the refusal is audited.
    let (code, text) = server.http("GET", "/api/dnc", Some(&sam), None);
    assert_eq!(code, 200, "{text}");
    let list = json_of(&text);
    assert_eq!(list["numbers"][0]["number"], "+49305550199", "{list}");
    assert_eq!(list["numbers"][0]["added_by"], "1001", "{list}");
    let admin = server.login("9900");
    let (_, text) = server.http("GET", "/api/audit?action=dial_refused", Some(&admin), None);
    let audit = json_of(&text);
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|e| e["actor"] == "1001" && e["target"] == "+49305550199"),
        "{audit}"
    );

    // The supervisor's outbound report has the call: placed by 1001, connected.
    let day = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let (code, text) = server.http(
        "GET",
        &format!("/api/reports/outbound?from={day}&to={day}"),
        Some(&sam),
        None,
    );
    assert_eq!(code, 200, "{text}");
    let outbound = json_of(&text);
    let row = &outbound["rows"][0];
    assert_eq!(
        (
            row["agent"].as_str(),
            row["calls"].as_i64(),
            row["connected"].as_i64()
        ),
        (Some("1001"), Some(1), Some(1)),
        "{outbound}"
    );
    assert!(row["talk_s"].as_i64().unwrap_or(0) >= 5, "{outbound}");
    // The agent workload report counts the time the customer was on hold.
    let (_, text) = server.http(
        "GET",
        &format!("/api/reports/agents?from={day}&to={day}"),
        Some(&sam),
        None,
    );
    let workload = json_of(&text);
    let alice = workload["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["agent"] == "1001"))
        .cloned()
        .unwrap_or_default();
    assert!(alice["hold_s"].as_i64().unwrap_or(0) >= 1, "{workload}");
    assert_eq!(alice["calls_out"], 1, "{workload}");

    // The visit booked on the call, handed over to the direct-sales person.
    let (_, text) = server.http("GET", "/api/appointments", Some(&sam), None);
    let visits = json_of(&text);
    let visit = &visits["appointments"][0];
    assert_eq!(visit["lead_id"], lead_id, "{visits}");
    assert_eq!(visit["booked_by"], "1001", "{visits}");
    assert_eq!(visit["state"], "shown", "{visits}");
    assert_eq!(visit["receiver"], "Max Verkauf", "{visits}");

    // The lead's timeline: the call out, by the agent, recorded; and the wrap-up's contact.
    let timeline = wait_for_call_on_timeline(&server, &sam, lead_id);
    let call = timeline
        .iter()
        .find(|e| e["kind"] == "call")
        .expect("the call is on the timeline");
    assert_eq!(call["detail"]["direction"], "outbound", "{call}");
    assert_eq!(call["detail"]["agent"], "1001", "{call}");
    assert_eq!(call["detail"]["connected"], true, "{call}");
    assert_eq!(
        visit["call_id"], call["detail"]["call_id"],
        "the visit names the call it was booked on"
    );
    assert!(
        call["detail"]["recordings"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "the call is recorded: {call}"
    );
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "contact" && e["detail"]["result"] == "do_not_call"),
        "{timeline:?}"
    );
}

/// The lead's timeline once the call is on it (the call's record is written as it ends).
fn wait_for_call_on_timeline(server: &Server, token: &str, lead: i64) -> Vec<Value> {
    for _ in 0..50 {
        let (code, text) = server.http("GET", &format!("/api/leads/{lead}"), Some(token), None);
        assert_eq!(code, 200, "{text}");
        let timeline = json_of(&text)["timeline"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if timeline.iter().any(|e| e["kind"] == "call") {
            return timeline;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no call on lead {lead}'s timeline");
}
