//! The agent console in a real browser (Debian's Chromium driven by Playwright,
//! `tests/browser/agent.mjs`), with a sipp carrier as the customer:
//!
//! the customer calls the IVR and presses 1 (sales); the agent's page, logged in and
//! available, rings and pops the customer's lead; the agent answers with the keyboard
//! shortcut. The customer's RTP end is the test's own socket sending a 600 Hz tone and
//! measuring what comes back; the browser's fake microphone plays a 1,400 Hz tone. So both
//! directions are measured: the browser's WebRTC statistics show packets sent and received,
//! and the customer hears the agent's tone. Hold gives the customer music instead of the
//! agent; resume brings the agent back. Reloading the page mid-call re-attaches the call
//! (music meanwhile). Before that, supervisor 9001's page (its own browser, its microphone a
//! 1 kHz tone) listens to the call from the floor view and hears it (its WebRTC statistics),
//! the customer not hearing the supervisor; then barges in (the customer hears them) and
//! stops; the monitor session is in the audit log. The agent hangs up, saves the disposition with a follow-up date, and
//! the lead's timeline has it. Screenshots of each step are kept in
//! `target/browser-screenshots/` for review.

mod common;

use common::{
    Driver, PROBE_HZ, Server, TonePeer, hears, hears_not, json_of, probe_call_server, repo_root,
    tone_file,
};
use serde_json::json;
use std::time::{Duration, Instant};

const CALLER: f64 = PROBE_HZ[0];
const AGENT: f64 = PROBE_HZ[2];
const SUPERVISOR: f64 = PROBE_HZ[1];

#[test]
fn an_agent_answers_holds_reloads_and_wraps_up_in_the_browser() {
    let shots = repo_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let server = Server::start(&["ivr.entry=menu"]);
    // The microphones: steady tones, quiet enough that a barge's mix does not clip.
    let wav = server.dir.path().join("agent-voice.wav");
    tone_file(&wav, AGENT, "0.5");
    let supervisor_wav = server.dir.path().join("supervisor-voice.wav");
    tone_file(&supervisor_wav, SUPERVISOR, "0.25");

    // The customer is a lead (national spelling of their number).
    let sam = server.login("9001");
    let lead = json!({ "name": "Greta Hansen", "phones": ["030 5550123"], "grade": "A", "source": "web", "owner": "1001" });
    let (code, text) = server.http("POST", "/api/leads", Some(&sam), Some(&lead.to_string()));
    assert_eq!(code, 201, "{text}");
    let lead_id = json_of(&text)["id"].as_i64().unwrap();

    let base = format!("http://{}", server.http);
    let mut browser = Driver::start(
        "agent.mjs",
        &[
            ("BASE", base.as_str().as_ref()),
            ("AGENT", "1001".as_ref()),
            ("PASSWORD", "demo1001".as_ref()),
            ("LEAD_NAME", "Greta Hansen".as_ref()),
            ("NEXT_DATE", "2031-05-06".as_ref()),
            ("WAV", wav.as_os_str()),
            ("SUPERVISOR", "9001".as_ref()),
            ("SUPERVISOR_PASSWORD", "demo9001".as_ref()),
            ("SUPERVISOR_WAV", supervisor_wav.as_os_str()),
            ("SHOTS", shots.as_os_str()),
        ],
    );
    let ready = browser.expect("ready", Duration::from_secs(60));
    assert!(
        ready["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("Login failed"),
        "a wrong password is refused with a clear error: {ready}"
    );
    browser.go_on();

    // The customer calls the IVR and presses 1 for sales.
    let (caller, media, server_media) =
        probe_call_server(&server, "100", "0305550123", "caller_probe_hung_up.xml");
    let server_media = server_media.expect("the IVR answers");
    let peer = TonePeer::tone(media, server_media, CALLER);
    std::thread::sleep(Duration::from_millis(1500));
    peer.press('1');

    let talking = browser.expect("talking", Duration::from_secs(60));
    let pop = talking["pop"].as_str().unwrap_or_default();
    assert!(
        pop.contains("Greta Hansen") && pop.contains("sales"),
        "pop: {pop}"
    );
    let s = &talking["stats"];
    assert!(
        s["sent"].as_u64().unwrap_or(0) > 20 && s["received"].as_u64().unwrap_or(0) > 20,
        "browser WebRTC stats: {s}"
    );
    assert!(
        s["level"].as_f64().unwrap_or(0.0) > 0.01,
        "the agent hears the customer's tone: {s}"
    );
    hears(&peer, AGENT, "the customer hears the agent");
    browser.go_on();

    browser.expect("held", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    let pattern = hears_not(&peer, AGENT, "on hold the customer does not hear the agent");
    let music = pattern.matches('+').count();
    assert!(
        music * 10 > pattern.len() * 6,
        "on hold the customer hears music: {pattern}"
    );
    browser.go_on();

    browser.expect("resumed", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    hears(&peer, AGENT, "resumed, the customer hears the agent again");
    browser.go_on();

    // The supervisor listens: they hear the call, the customer does not hear them.
    let listening = browser.expect("listening", Duration::from_secs(30));
    let s = &listening["stats"];
    assert!(
        s["received"].as_u64().unwrap_or(0) > 20 && s["level"].as_f64().unwrap_or(0.0) > 0.01,
        "the supervisor's page hears the call: {listening}"
    );
    hears_not(
        &peer,
        SUPERVISOR,
        "listening, the supervisor is not heard by the customer",
    );
    browser.go_on();
    browser.expect("barging", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    hears(
        &peer,
        SUPERVISOR,
        "barging, the customer hears the supervisor",
    );
    browser.go_on();
    let stopped = browser.expect("stopped", Duration::from_secs(30));
    assert!(
        stopped["report"].as_str().unwrap().contains("sales"),
        "the floor shows today's skill-group report: {stopped}"
    );
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto(stopped["xlsx"].as_str().unwrap())
        .expect("the downloaded report opens as XLSX");
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let cells: Vec<String> = sheet.rows().flatten().map(|c| c.to_string()).collect();
    assert!(
        cells.starts_with(&["queue".into(), "offered".into()]) && cells.contains(&"sales".into()),
        "{cells:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    hears_not(&peer, SUPERVISOR, "stopped, the supervisor is gone");
    browser.go_on();

    let reattached = browser.expect("reattached", Duration::from_secs(40));
    let s = &reattached["stats"];
    assert!(
        s["sent"].as_u64().unwrap_or(0) > 20 && s["received"].as_u64().unwrap_or(0) > 20,
        "after the reload the new page's audio flows: {s}"
    );
    std::thread::sleep(Duration::from_millis(500));
    hears(
        &peer,
        AGENT,
        "after the reload the customer hears the agent",
    );
    browser.go_on();

    // A second caller dials 1001 directly: the page answers it as a second line, the first
    // customer is put on hold (music, no agent); then back to the first.
    let (caller2, media2, server_media2) =
        probe_call_server(&server, "1001", "0305550999", "caller_probe_hung_up.xml");
    let peer2 = TonePeer::tone(media2, server_media2.expect("the server answers"), CALLER);
    browser.expect("second_line", Duration::from_secs(40));
    std::thread::sleep(Duration::from_millis(500));
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let to = Instant::now();
    let (n1, tone1) = peer.heard_tone(AGENT, from, to);
    let music = peer.pattern(AGENT, from, to);
    let (n2, tone2) = peer2.heard_tone(AGENT, from, to);
    let line2 = peer2.pattern(AGENT, from, to);
    assert!(
        n2 > 80 && tone2 * 10 > n2 * 8,
        "the second caller hears the agent: {tone2} of {n2} packets {line2}"
    );
    assert!(
        n1 > 80 && tone1 * 20 < n1 && music.matches('+').count() * 10 > music.len() * 6,
        "the first caller is on hold with music: {tone1} of {n1} packets {music}"
    );
    browser.go_on();
    browser.expect("first_again", Duration::from_secs(30));
    let run2 = caller2.wait(Duration::from_secs(10));
    assert!(
        run2.success,
        "the second caller was hung up on: {}",
        run2.report()
    );
    std::thread::sleep(Duration::from_millis(500));
    hears(
        &peer,
        AGENT,
        "back on the first line, the customer hears the agent",
    );
    browser.go_on();

    let done = browser.expect("done", Duration::from_secs(30));
    assert_eq!(done["problems"], json!([]), "no console errors: {done}");
    let run = caller.wait(Duration::from_secs(20));
    assert!(run.success, "the customer was hung up on: {}", run.report());

    // The disposition is on the lead: a contact by 1001, the agreed follow-up date.
    let (_, text) = server.http("GET", &format!("/api/leads/{lead_id}"), Some(&sam), None);
    let v = json_of(&text);
    let contact = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "contact")
        .unwrap_or_else(|| panic!("no contact on the timeline: {v:#}"));
    assert_eq!(contact["actor"], "1001", "{contact}");
    assert_eq!(contact["detail"]["result"], "callback", "{contact}");
    // It is the call's disposition too, naming the call; so is the second line's.
    assert!(contact["detail"]["call_id"].as_u64().is_some(), "{contact}");
    let codes = server.rows(
        "SELECT agent, code FROM call_dispositions ORDER BY at_ms",
        2,
        Duration::from_secs(5),
    );
    assert_eq!(
        codes,
        vec![
            vec![Some("1001".to_string()), Some("reached".to_string())],
            vec![Some("1001".to_string()), Some("callback".to_string())],
        ]
    );
    let next = v["next_follow_up_ms"].as_i64().unwrap_or(0);
    assert!(
        (1_935_700_000_000..1_935_950_000_000).contains(&next),
        "next follow-up on 2031-05-06: {next}"
    );
    // The supervisor's session is audited: listen, then barge.
    let (_, text) = server.http("GET", "/api/monitor-sessions", Some(&sam), None);
    let v = json_of(&text);
    let session = &v["sessions"][0];
    assert_eq!(session["supervisor"], "9001", "{v:#}");
    assert_eq!(session["agent"], "1001", "{v:#}");
    assert_eq!(session["connected"], true, "{v:#}");
    let modes: Vec<&str> = session["modes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mode"].as_str())
        .collect();
    assert_eq!(modes, vec!["listen", "barge"], "{v:#}");
    assert_eq!(session["outcome"], "the supervisor stopped", "{v:#}");

    // The call record: answered in the browser, ended by the agent.
    let rows = server.rows(
        "SELECT end_cause, ended_by FROM calls WHERE connected_at_ms IS NOT NULL",
        2,
        Duration::from_secs(10),
    );
    assert!(
        rows.iter().all(|r| r[0].as_deref() == Some("agent_hangup")),
        "{rows:?}"
    );
}
