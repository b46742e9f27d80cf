//! A progressive outbound campaign end to end: the supervisor makes it over the API (a
//! script, one retry 8 s after a failed call, two leads, the second on the do-not-call list)
//! and starts it; agent 1001 joins it in Chromium (`tests/browser/campaign.mjs`) and the
//! server dials for them through the trunk. The trunk is first a sipp UAS answering 486 Busy
//! Here: the page says the customer was busy. The lead on the do-not-call list is taken out
//! of the campaign without a call. The retry goes to a second sipp UAS that answers: the
//! page shows the lead and the script, the customer hears the agent. The agent hangs up and
//! records the result; the campaign report (JSON and CSV) has each lead's state, attempts,
//! last outcome and result, and the trunk saw exactly two INVITEs for the lead's number.
//! Screenshots go to `target/browser-screenshots/`.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{
    Driver, PROBE_HZ, Server, TonePeer, call, free_port, hears, repo_root, server_media,
    spawn_sipp, tone_file,
};
use serde_json::json;

const CUSTOMER: f64 = PROBE_HZ[0];
const AGENT: f64 = PROBE_HZ[2];

#[test]
fn a_progressive_campaign_retries_a_busy_customer_skips_do_not_call_and_reaches_the_lead() {
    let shots = repo_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // The trunk, first busy for one call.
    let trunk_port = free_port();
    let busy = spawn_sipp(None, "agent_busy.xml", trunk_port, &["-m", "1"]);
    std::thread::sleep(Duration::from_millis(500));

    let server = Server::start(&[
        "trunk.host=127.0.0.1",
        &format!("trunk.port={trunk_port}"),
        "dialing.calling_hours=[]",
    ]);
    let wav = server.dir.path().join("agent-voice.wav");
    tone_file(&wav, AGENT, "0.5");

    let sam = server.login("9001");
    let alice = server.login("1001");
    let lead = |name: &str, phone: &str| {
        let (code, v) = call(
            &server,
            "POST",
            "/api/leads",
            &sam,
            Some(json!({ "name": name, "phones": [phone], "grade": "A", "source": "hq" })),
        );
        assert_eq!(code, 201, "{v}");
        v["id"].as_i64().unwrap()
    };
    let weber = lead("Kanzlei Weber", "030 5550701");
    let vogel = lead("Praxis Vogel", "030 5550702");
    let (code, v) = call(
        &server,
        "POST",
        "/api/dnc",
        &sam,
        Some(json!({ "number": "030 5550702", "reason": "asked in March" })),
    );
    assert_eq!(code, 201, "{v}");

    // The campaign: agents may not make one, the sales supervisor does.
    let body = json!({
        "name": "Renewals", "mode": "progressive", "skill": "sales", "retries": 1,
        "retry_after_s": 8,
        "script": "Good morning, this is Alice from the dealership: your service plan expires soon.",
    });
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/campaigns",
            &alice,
            Some(body.clone())
        )
        .0,
        403
    );
    let (code, c) = call(&server, "POST", "/api/campaigns", &sam, Some(body));
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    assert_eq!(c["state"], "paused");
    let (code, v) = call(
        &server,
        "POST",
        &format!("/api/campaigns/{id}/leads"),
        &sam,
        Some(json!({ "leads": [weber, vogel] })),
    );
    assert_eq!((code, v["added"].as_i64()), (200, Some(2)), "{v}");
    let (code, v) = call(
        &server,
        "POST",
        &format!("/api/campaigns/{id}/state"),
        &sam,
        Some(json!({ "state": "running" })),
    );
    assert_eq!(code, 200, "{v}");

    let base = format!("http://{}", server.http);
    let mut browser = Driver::start(
        "campaign.mjs",
        &[
            ("BASE", base.as_str().as_ref()),
            ("AGENT", "1001".as_ref()),
            ("PASSWORD", "demo1001".as_ref()),
            ("CAMPAIGN", "Renewals".as_ref()),
            ("RESULT", "callback".as_ref()),
            ("WAV", wav.as_os_str()),
            ("SHOTS", shots.as_os_str()),
        ],
    );

    let step = browser.expect("busy", Duration::from_secs(60));
    assert!(
        step["status"].as_str().unwrap_or_default().contains("busy"),
        "{step}"
    );
    let run = busy.wait(Duration::from_secs(20));
    assert!(run.success, "the busy trunk\n{}", run.report());
    assert!(
        run.messages().contains("INVITE sip:+49305550701@")
            && !run.messages().contains("+49305550702"),
        "the busy call was to the lead's number\n{}",
        run.report()
    );
    // Now the trunk answers: the retry comes 8 s after the busy call.
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = media.local_addr().unwrap().port().to_string();
    let mp = free_port().to_string();
    let trunk = spawn_sipp(
        None,
        "agent_uas_probe.xml",
        trunk_port,
        &["-m", "1", "-mp", &mp, "-key", "rtp_port", &key],
    );
    browser.go_on();

    let server_side = server_media(&trunk, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the retry did not come\nserver log:\n{}", server.log_text()));
    let peer = TonePeer::tone(media, server_side, CUSTOMER);
    let talking = browser.expect("talking", Duration::from_secs(60));
    let shown = talking["lead"].as_str().unwrap_or_default();
    assert!(
        shown.contains("Kanzlei Weber") && shown.contains("your service plan expires soon"),
        "the lead and the script as the call goes out: {shown}"
    );
    hears(&peer, AGENT, "the customer hears the agent");
    browser.go_on();

    let done = browser.expect("done", Duration::from_secs(60));
    assert_eq!(done["problems"], json!([]), "browser console errors");
    let run = trunk.wait(Duration::from_secs(30));
    assert!(run.success, "the answering trunk\n{}", run.report());
    let invites = run.messages();
    assert!(invites.contains("INVITE sip:+49305550701@"), "{invites}");
    assert!(
        !invites.contains("+49305550702"),
        "the do-not-call number is never dialed"
    );

    // The report: Weber reached on the second attempt with the agent's result; Vogel out.
    let (code, v) = call(
        &server,
        "GET",
        &format!("/api/campaigns/{id}/report"),
        &sam,
        None,
    );
    assert_eq!(code, 200, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    let (w, g) = (&rows[0], &rows[1]);
    assert_eq!(w["lead_name"], "Kanzlei Weber", "{v}");
    assert_eq!(w["state"], "reached", "{v}");
    assert_eq!(w["attempts"], 2, "{v}");
    assert_eq!(w["last_outcome"], "connected", "{v}");
    assert_eq!(w["result"], "callback", "{v}");
    assert_eq!(w["agent"], "1001", "{v}");
    assert_eq!(g["state"], "excluded", "{v}");
    assert_eq!(g["last_outcome"], "do_not_call", "{v}");
    assert_eq!(g["attempts"], 0, "no call to a do-not-call number: {v}");
    let (code, csv) = server.http(
        "GET",
        &format!("/api/campaigns/{id}/report?format=csv"),
        Some(&sam),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        csv.lines().any(|l| l.contains("Kanzlei Weber")
            && l.contains("reached")
            && l.contains("callback")),
        "{csv}"
    );
    assert!(
        done["counts"]
            .as_str()
            .unwrap_or_default()
            .contains("1 reached"),
        "{done}"
    );
}
