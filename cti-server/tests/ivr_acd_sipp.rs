//! Acceptance tests for hosted calls: the IVR, the ACD queues and voicemail, driven by sipp as
//! the carrier (caller) and as the agents' phones. The callers press keys with RFC 4733
//! events (sipp plays the Debian package's `dtmf_2833_N.pcap`), talk with `g711a.pcap`; the
//! agents are sipp UASes that REGISTERed from the port they then listen on.
//!
//! What is checked is what a call center sees afterwards: the call record (which services
//! handled the call, which agent took it, when), the queue events the reports are computed
//! from, the voicemail WAV and its row, and the agents' states through the REST API.
//!
//! The tests take a lock and run one at a time (timing on a shared 2-core machine).

mod common;

use common::{
    Server, SippChild, SippRun, TonePeer, free_port, probe_call, register_agent, spawn_sipp,
};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const TOKEN: &str = "demo-api-token";

fn log_tail(server: &Server) -> String {
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Registers agent `ext` (password `demo<ext>`) and starts its phone `scenario` for `calls`.
fn agent(server: &Server, ext: &str, scenario: &str, calls: u32) -> SippChild {
    agent_with(server, ext, scenario, calls, &[])
}

/// [`agent`] with `-key` keywords for the scenario.
fn agent_with(
    server: &Server,
    ext: &str,
    scenario: &str,
    calls: u32,
    keys: &[(&str, &str)],
) -> SippChild {
    let port = free_port();
    let reg = register_agent(server.sip, ext, &format!("demo{ext}"), port);
    assert!(
        reg.success,
        "agent {ext} did not register\n{}\n{}",
        reg.report(),
        log_tail(server)
    );
    let mp = free_port().to_string();
    let calls = calls.to_string();
    let mut args = vec!["-m", calls.as_str(), "-mp", mp.as_str(), "-rtp_echo"];
    for (k, v) in keys {
        args.extend(["-key", k, v]);
    }
    let uas = spawn_sipp(None, scenario, port, &args);
    std::thread::sleep(Duration::from_millis(500));
    uas
}

/// The carrier calls `number` with `scenario` once, with `-set` variables.
fn caller(server: &Server, scenario: &str, number: &str, sets: &[(&str, &str)]) -> SippChild {
    let mp = free_port().to_string();
    let mut args = vec!["-s", number, "-mp", mp.as_str(), "-m", "1"];
    for (k, v) in sets {
        args.extend(["-set", k, v]);
    }
    spawn_sipp(Some(server.sip), scenario, free_port(), &args)
}

fn finished(run: SippRun, what: &str, server: &Server) {
    assert!(
        run.success,
        "{what} failed\n{}\nserver log:\n{}",
        run.report(),
        log_tail(server)
    );
}

/// The last call's services, agent, and whether an agent answered it.
fn last_call(server: &Server) -> (String, Option<String>, bool, Option<String>) {
    let rows = server.rows(
        "SELECT services, agent, CASE WHEN connected_at_ms IS NOT NULL THEN '1' ELSE '0' END, end_cause
         FROM calls ORDER BY offered_at_ms DESC LIMIT 1",
        1,
        Duration::from_secs(10),
    );
    let r = rows.first().expect("a call record");
    (
        r[0].clone().unwrap_or_default(),
        r[1].clone(),
        r[2].as_deref() == Some("1"),
        r[3].clone(),
    )
}

/// Queue event kinds of the last call, in order, with agent.
fn queue_events(server: &Server) -> Vec<(String, Option<String>, Option<String>)> {
    server
        .rows(
            "SELECT kind, queue, agent FROM queue_events
             WHERE call_id = (SELECT id FROM calls ORDER BY offered_at_ms DESC LIMIT 1)
             ORDER BY id",
            1,
            Duration::from_secs(10),
        )
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone(), r[2].clone()))
        .collect()
}

fn kinds(events: &[(String, Option<String>, Option<String>)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

#[test]
fn caller_presses_1_and_a_sales_agent_answers() {
    let _serial = serial();
    let server = Server::start(&["ivr.entry=menu"]);
    let alice = agent(&server, "1001", "agent_uas.xml", 1);
    let call = caller(&server, "caller_ivr_press1.xml", "100", &[]);
    finished(call.wait(Duration::from_secs(60)), "caller", &server);
    finished(alice.wait(Duration::from_secs(20)), "agent 1001", &server);
    let (services, agent, connected, cause) = last_call(&server);
    assert_eq!(services, "flow:menu queue:sales", "{}", log_tail(&server));
    assert_eq!(agent.as_deref(), Some("1001"));
    assert!(connected, "an agent answered");
    assert_eq!(cause.as_deref(), Some("caller_hangup"));
    let ev = queue_events(&server);
    let k = kinds(&ev);
    for want in ["enter", "offer", "answer", "leave", "call_ended"] {
        assert!(k.contains(&want), "{want} missing from {ev:?}");
    }
    assert!(
        ev.iter()
            .all(|e| e.1.as_deref().is_none_or(|q| q == "sales"))
    );
    // The floor's figures for today: one caller, answered in time.
    let sam = server.login("9001");
    let (code, text) = server.http("GET", "/api/queues/sales", Some(&sam), None);
    assert_eq!(code, 200, "{text}");
    let today = &common::json_of(&text)["today"];
    assert_eq!(today["left"], 1, "{today}");
    assert_eq!(today["answered"], 1, "{today}");
    assert_eq!(today["abandoned"], 0, "{today}");
    assert_eq!(today["service_level"], 1.0, "{today}");
    assert_eq!(today["service_level_s"], 20, "{today}");

    // The same day as reports: the skill-group report as JSON, CSV and XLSX (read back with
    // calamine), and the agent workload.
    let day = String::from_utf8(
        std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let day = day.trim();
    let range = format!("from={day}&to={day}");
    let (code, text) = server.http(
        "GET",
        &format!("/api/reports/queues?{range}"),
        Some(&sam),
        None,
    );
    assert_eq!(code, 200, "{text}");
    let report = common::json_of(&text);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the sales supervisor's queues only: {report}"
    );
    assert_eq!(rows[0]["queue"], "sales");
    assert_eq!(rows[0]["offered"], 1, "{report}");
    assert_eq!(rows[0]["answered"], 1, "{report}");
    assert_eq!(rows[0]["service_level_pct"], 100.0, "{report}");
    let (code, _, csv) = server.http_get_raw(
        &format!("/api/reports/queues?{range}&format=csv"),
        &[("Authorization", &format!("Bearer {sam}"))],
    );
    assert_eq!(code, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("queue,offered,answered,abandoned"), "{csv}");
    assert!(csv.contains("\nsales,1,1,0,0,0,100.0,20,"), "{csv}");
    let (code, headers, xlsx) = server.http_get_raw(
        &format!("/api/reports/agents?{range}&format=xlsx"),
        &[("Authorization", &format!("Bearer {sam}"))],
    );
    assert_eq!(code, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-disposition" && v.contains(".xlsx")),
        "{headers:?}"
    );
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(xlsx)).expect("an XLSX file");
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows[0][0], "agent");
    assert_eq!(rows[0][1], "queue_calls_answered");
    let alice = rows.iter().find(|r| r[0] == "1001").expect("1001's row");
    assert_eq!(alice[1], "1", "{rows:?}");
    // Agents get no reports; a bad date is a clear 400.
    let alice_token = server.login("1001");
    let (code, _) = server.http("GET", "/api/reports/queues", Some(&alice_token), None);
    assert_eq!(code, 403);
    let (code, text) = server.http(
        "GET",
        "/api/reports/queues?from=yesterday",
        Some(&sam),
        None,
    );
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("YYYY-MM-DD"), "{text}");
}

#[test]
fn ring_no_answer_moves_to_the_next_agent() {
    let _serial = serial();
    // Top-down: Alice (skill 5) rings first and does not answer within 3 s; Bob takes it.
    let server = Server::start(&[
        "ivr.entry=menu",
        "queues=[{name=\"sales\",number=\"110\",strategy=\"top-down\",ring_timeout_s=3,wrap_up_s=0,max_wait_s=60,overflow={queue=\"service\"}},{name=\"service\",number=\"120\"}]",
    ]);
    let alice = agent(&server, "1001", "agent_noanswer.xml", 1);
    let bob = agent(&server, "1002", "agent_uas.xml", 1);
    let call = caller(&server, "caller_ivr_press1.xml", "100", &[]);
    finished(call.wait(Duration::from_secs(60)), "caller", &server);
    finished(
        alice.wait(Duration::from_secs(20)),
        "agent 1001 (cancelled)",
        &server,
    );
    finished(bob.wait(Duration::from_secs(20)), "agent 1002", &server);
    let (_, agent, connected, _) = last_call(&server);
    assert_eq!(agent.as_deref(), Some("1002"));
    assert!(connected);
    let ev = queue_events(&server);
    let rna = ev
        .iter()
        .position(|e| e.0 == "ring_no_answer")
        .unwrap_or_else(|| panic!("no ring_no_answer in {ev:?}"));
    assert_eq!(ev[rna].2.as_deref(), Some("1001"));
    let answer = ev.iter().position(|e| e.0 == "answer").expect("answer");
    assert!(answer > rna);
    assert_eq!(ev[answer].2.as_deref(), Some("1002"));
    // Alice missed one call: still available (the break comes after 3 misses in a row).
    let (code, body) = server.http("GET", "/api/agents/1001", Some(TOKEN), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"misses_in_row\":1"), "{body}");
}

#[test]
fn max_wait_overflows_to_service_keeping_the_arrival_and_an_agent_on_break_is_skipped() {
    let _serial = serial();
    let server = Server::start(&[
        "ivr.entry=menu",
        "queues=[{name=\"sales\",number=\"110\",ring_timeout_s=5,wrap_up_s=0,max_wait_s=3,overflow={queue=\"service\"}},{name=\"service\",number=\"120\",wrap_up_s=0}]",
    ]);
    // Alice (sales) is registered but on break: the sales queue has nobody to offer to.
    let _alice = agent(&server, "1001", "agent_uas.xml", 1);
    let (code, body) = server.http(
        "POST",
        "/api/agents/1001/state",
        Some(TOKEN),
        Some(r#"{"state":"break","reason":"lunch"}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"state\":\"break\"") && body.contains("lunch"),
        "{body}"
    );
    let carol = agent(&server, "2001", "agent_uas.xml", 1);
    let call = caller(&server, "caller_ivr_press1.xml", "100", &[]);
    finished(call.wait(Duration::from_secs(60)), "caller", &server);
    finished(carol.wait(Duration::from_secs(20)), "agent 2001", &server);
    let (services, agent, connected, _) = last_call(&server);
    assert_eq!(agent.as_deref(), Some("2001"), "{services}");
    assert!(connected);
    assert!(
        services.contains("queue:sales") && services.contains("queue:service"),
        "{services}"
    );
    let ev = queue_events(&server);
    assert!(
        ev.iter()
            .any(|e| e.0 == "overflow" && e.1.as_deref() == Some("sales")),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| e.0 == "offer" && e.2.as_deref() == Some("1001")),
        "the agent on break was offered the call: {ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.0 == "answer" && e.1.as_deref() == Some("service")),
        "{ev:?}"
    );
}

#[test]
fn after_hours_the_caller_leaves_a_voicemail() {
    let _serial = serial();
    // A flow directory whose hours are never open: the demo's after-hours path.
    let tmp = tempfile::tempdir().unwrap();
    let flows = tmp.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    for f in ["menu.toml", "service.toml", "voicemail.toml"] {
        std::fs::copy(
            common::repo_root().join("ivr-scripts").join(f),
            flows.join(f),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(
        common::repo_root().join("ivr-scripts/prompts"),
        flows.join("prompts"),
    )
    .unwrap();
    let main = std::fs::read_to_string(common::repo_root().join("ivr-scripts/main.toml")).unwrap();
    // Every day is a holiday in this copy.
    let today = jiff_free_today();
    let closed = main.replace("holidays = [", &format!("holidays = [\"{today}\", "));
    std::fs::write(flows.join("main.toml"), closed).unwrap();
    let flows_set = format!("ivr.dir={}", flows.display());
    let server = Server::start(&[&flows_set]);
    let call = caller(&server, "caller_voicemail.xml", "100", &[]);
    finished(call.wait(Duration::from_secs(60)), "caller", &server);
    let (services, _, connected, cause) = last_call(&server);
    assert_eq!(
        services,
        "flow:main voicemail:general",
        "{}",
        log_tail(&server)
    );
    assert!(!connected);
    assert_eq!(cause.as_deref(), Some("caller_hangup"));
    let vm = server.rows(
        "SELECT mailbox, path, CAST(duration_ms AS TEXT) FROM voicemails",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(vm.len(), 1, "{}", log_tail(&server));
    assert_eq!(vm[0][0].as_deref(), Some("general"));
    let path = vm[0][1].clone().unwrap();
    let ms: i64 = vm[0][2].as_deref().unwrap().parse().unwrap();
    assert!((2000..15000).contains(&ms), "message length {ms} ms");
    let wav = hound::WavReader::open(&path).expect("voicemail WAV readable");
    assert_eq!(wav.spec().sample_rate, 8000);
    // The caller's words are in it: g711a.pcap is speech, not silence.
    let samples: Vec<i32> = wav
        .into_samples::<i16>()
        .step_by(2)
        .map(|s| i32::from(s.unwrap()))
        .collect();
    let loud = samples.iter().filter(|s| s.abs() > 1000).count();
    assert!(loud > 800, "only {loud} loud samples in the caller channel");
    // Listed by the API, and marked heard.
    let (code, body) = server.http("GET", "/api/voicemails?mailbox=general", Some(TOKEN), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"mailbox\":\"general\""), "{body}");
    let (code, _) = server.http("GET", "/api/voicemails", Some("wrong"), None);
    assert_eq!(code, 401);
    let id = server.rows(
        "SELECT CAST(id AS TEXT) FROM voicemails",
        1,
        Duration::from_secs(1),
    )[0][0]
        .clone()
        .unwrap();
    let (code, body) = server.http(
        "POST",
        &format!("/api/voicemails/{id}/heard"),
        Some(TOKEN),
        Some(r#"{"by":"1001"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = server.http("GET", "/api/voicemails?unheard=true", Some(TOKEN), None);
    assert!(body.contains("\"voicemails\":[]"), "{body}");
}

/// Today's date in Berlin as the demo flow reads it (UTC date ± a day is covered by adding
/// yesterday, today and tomorrow in UTC).
fn jiff_free_today() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let dates: Vec<String> = [-86400, 0, 86400]
        .iter()
        .map(|d| civil_date((now + d).div_euclid(86400)))
        .collect();
    dates.join("\", \"")
}

/// Days since 1970-01-01 to YYYY-MM-DD (Howard Hinnant's civil-from-days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// Admins replace prompt audio and reload the flows without a restart: any common WAV is
/// converted to 8 kHz mono, a broken file or a broken flow is refused with a clear error and
/// changes nothing.
#[test]
fn prompts_are_uploaded_and_flows_reloaded_through_the_api() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let flows = tmp.path().join("flows");
    std::fs::create_dir_all(flows.join("prompts")).unwrap();
    let src = common::repo_root().join("ivr-scripts");
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&p, flows.join(p.file_name().unwrap())).unwrap();
        }
    }
    for entry in std::fs::read_dir(src.join("prompts")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, flows.join("prompts").join(p.file_name().unwrap())).unwrap();
    }
    let dir_set = format!("ivr.dir={}", flows.display());
    let server = Server::start(&[&dir_set]);

    // 16 kHz stereo float in, 8 kHz mono 16-bit out, 1.5 s long.
    let mut wav = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::new(&mut wav, spec).unwrap();
        for i in 0..24000 {
            let v = (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 16000.0).sin() * 0.3;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
    }
    let wav = wav.into_inner();
    let put = |name: &str, token: Option<&str>, body: &[u8]| {
        server.http_bytes(
            "PUT",
            &format!("/api/prompts/{name}"),
            token,
            body,
            Some("audio/wav"),
        )
    };
    let (code, body) = put("welcome", Some(TOKEN), &wav);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"duration_ms\":1500"), "{body}");
    let stored = hound::WavReader::open(flows.join("prompts/welcome.wav")).unwrap();
    let spec = stored.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    assert_eq!(stored.len(), 12000);
    // A broken file is refused and the stored prompt stays.
    let (code, body) = put("welcome", Some(TOKEN), b"RIFF....WAVEjunk");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not a usable WAV"), "{body}");
    assert_eq!(
        hound::WavReader::open(flows.join("prompts/welcome.wav"))
            .unwrap()
            .len(),
        12000
    );
    assert_eq!(put("..%2Fescape", Some(TOKEN), &wav).0, 400);
    assert_eq!(put("welcome", None, &wav).0, 401);

    // A flow broken on disk: the reload is refused naming file and node; the old set stays.
    let menu = std::fs::read_to_string(flows.join("menu.toml")).unwrap();
    std::fs::write(
        flows.join("menu.toml"),
        menu.replace("next = \"sales_queue\"", "next = \"nowhere\""),
    )
    .unwrap();
    let (code, body) = server.http("POST", "/api/ivr/reload", Some(TOKEN), None);
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("menu.toml") && body.contains("nowhere"),
        "{body}"
    );
    std::fs::write(flows.join("menu.toml"), menu).unwrap();
    let (code, body) = server.http("POST", "/api/ivr/reload", Some(TOKEN), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"menu\""), "{body}");
}

/// Percent-escapes a URI header value (RFC 3261 §19.1.2: `;`, `=`, `@` and the like).
fn escape(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Blind transfer: the sales agent's phone REFERs the caller to the service queue's number;
/// the agent is let go (and wraps up), the caller waits in the service queue and a service
/// agent takes the call.
#[test]
fn blind_transfer_from_a_sales_agent_to_the_service_queue() {
    let _serial = serial();
    let server = Server::start(&[]);
    let alice = agent_with(
        &server,
        "1001",
        "agent_refer_blind.xml",
        1,
        &[("refer_to", "120")],
    );
    let carol = agent(&server, "2001", "agent_uas_hangup.xml", 1);
    let call = caller(&server, "caller_waits_bye.xml", "110", &[]);
    finished(
        alice.wait(Duration::from_secs(30)),
        "agent 1001 (transferor)",
        &server,
    );
    finished(carol.wait(Duration::from_secs(30)), "agent 2001", &server);
    finished(call.wait(Duration::from_secs(30)), "caller", &server);
    let (services, agent, connected, cause) = last_call(&server);
    assert_eq!(
        services,
        "queue:sales transfer:120 queue:service",
        "{}",
        log_tail(&server)
    );
    assert_eq!(
        agent.as_deref(),
        Some("2001"),
        "the last agent is on the record"
    );
    assert!(connected);
    assert_eq!(cause.as_deref(), Some("agent_hangup"));
    let ev = queue_events(&server);
    let answers: Vec<(Option<&str>, Option<&str>)> = ev
        .iter()
        .filter(|e| e.0 == "answer")
        .map(|e| (e.1.as_deref(), e.2.as_deref()))
        .collect();
    assert_eq!(
        answers,
        vec![
            (Some("sales"), Some("1001")),
            (Some("service"), Some("2001"))
        ],
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.0 == "call_ended" && e.2.as_deref() == Some("1001")),
        "the transferor's call ended in the ACD (wrap-up follows): {ev:?}"
    );
}

/// A blind transfer to a number that goes nowhere: the transferor hears "404" in the final
/// NOTIFY and keeps the caller.
#[test]
fn blind_transfer_to_an_unknown_number_is_refused_and_the_agent_keeps_the_caller() {
    let _serial = serial();
    let server = Server::start(&[]);
    let alice = agent_with(
        &server,
        "1001",
        "agent_refer_refused.xml",
        1,
        &[("refer_to", "999")],
    );
    let call = caller(&server, "caller_waits_bye.xml", "110", &[]);
    finished(alice.wait(Duration::from_secs(30)), "agent 1001", &server);
    finished(call.wait(Duration::from_secs(30)), "caller", &server);
    let (services, agent, _, cause) = last_call(&server);
    assert_eq!(services, "queue:sales");
    assert_eq!(agent.as_deref(), Some("1001"));
    assert_eq!(cause.as_deref(), Some("agent_hangup"));
}

/// Attended transfer (RFC 5589 §7): the sales agent, talking to the caller, consults the
/// service agent on a second line, then REFERs with Replaces; the server joins the caller
/// and the service agent and hangs up both of the first agent's lines. The caller hanging up
/// later ends the joined call too.
#[test]
fn attended_transfer_joins_the_caller_with_the_consulted_agent() {
    let _serial = serial();
    let server = Server::start(&[]);
    let alice = agent(&server, "1001", "agent_answer_for_consult.xml", 1);
    let carol = agent(&server, "2001", "agent_uas.xml", 1);
    // The customer's voice is the test's own RTP end; both agents' phones echo what they hear.
    let (call, media, target) = probe_call(&server, "110");
    let peer = TonePeer::start(media, target.expect("the queue answers the caller"));
    // Alice's first line says which dialog it is in once it answered.
    let file = alice.dir.join("dialog.txt");
    let t0 = std::time::Instant::now();
    let dialog = loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let parts: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            if parts.len() == 3 {
                break parts;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "agent 1001 never answered\n{}",
            log_tail(&server)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Replaces names Alice's first dialog from her side: her tag is the local one.
    let replaces = escape(&format!(
        "{};to-tag={};from-tag={}",
        dialog[0], dialog[1], dialog[2]
    ));
    let mp = free_port().to_string();
    let consult = spawn_sipp(
        Some(server.sip),
        "agent_consult_refer.xml",
        free_port(),
        &[
            "-s", "2001", "-m", "1", "-mp", &mp, "-key", "replaces", &replaces,
        ],
    );
    finished(
        consult.wait(Duration::from_secs(30)),
        "agent 1001's consultation line",
        &server,
    );
    finished(
        alice.wait(Duration::from_secs(30)),
        "agent 1001's first line",
        &server,
    );
    // Both of Alice's lines are hung up: what the caller hears now comes through Carol.
    let joined = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let (received, loud) = peer.heard_since(joined);
    assert!(
        loud >= 50,
        "after the join only {loud} of {received} packets brought the caller's voice back \
         through the consulted agent\n{}",
        log_tail(&server)
    );
    drop(peer);
    finished(call.wait(Duration::from_secs(30)), "caller", &server);
    finished(carol.wait(Duration::from_secs(30)), "agent 2001", &server);
    let rows = server.rows(
        "SELECT services, agent, end_cause FROM calls ORDER BY offered_at_ms",
        2,
        Duration::from_secs(10),
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let customer = &rows[0];
    let consultation = &rows[1];
    assert!(
        customer[0]
            .as_deref()
            .is_some_and(|s| s.starts_with("queue:sales joined:")),
        "{rows:?}"
    );
    assert_eq!(customer[2].as_deref(), Some("caller_hangup"), "{rows:?}");
    assert_eq!(consultation[1].as_deref(), Some("2001"), "{rows:?}");
    assert!(
        consultation[0]
            .as_deref()
            .is_some_and(|s| s.contains("joined:")),
        "{rows:?}"
    );
    assert_eq!(
        consultation[2].as_deref(),
        Some("caller_hangup"),
        "the joined call ended with the customer's hang-up: {rows:?}"
    );
    // The customer's call is recorded whole, across the join: one file, as long as the
    // customer talked to somebody. (The consultation is a call of its own, recorded too.)
    let rec = server.rows(
        "SELECT CAST(r.duration_ms AS TEXT), CAST(c.ended_at_ms - c.connected_at_ms AS TEXT)
         FROM recordings r JOIN calls c ON c.id = r.call_id
         WHERE c.services LIKE 'queue:sales%'",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(
        rec.len(),
        1,
        "one recording of the customer's call: {rec:?}"
    );
    let ms = |i: usize| rec[0][i].as_deref().unwrap().parse::<i64>().unwrap();
    assert!((ms(0) - ms(1)).abs() <= 100, "{rec:?}");
    let ev = queue_events(&server);
    assert!(
        server
            .rows(
                "SELECT kind FROM queue_events WHERE kind = 'call_ended' AND agent = '1001'",
                1,
                Duration::from_secs(10),
            )
            .len()
            == 1,
        "the transferor's queue call ended when the calls were joined: {ev:?}"
    );
}

/// The demo's service queue has result codes: after a call its agent stays in wrap-up until
/// they record one (the wrap-up time alone does not end it), cannot go available before, and
/// records it once, from the queue's codes, for their own call only.
#[test]
fn a_service_call_holds_its_agent_in_wrap_up_until_the_disposition() {
    let _serial = serial();
    let server = Server::start(&[]);
    let phone = agent(&server, "2001", "agent_uas.xml", 1);
    let call = caller(&server, "caller_basic.xml", "120", &[]);
    finished(call.wait(Duration::from_secs(60)), "caller", &server);
    finished(phone.wait(Duration::from_secs(20)), "agent 2001", &server);
    let (services, agent, connected, _) = last_call(&server);
    assert_eq!(
        (services.as_str(), agent.as_deref(), connected),
        ("queue:service", Some("2001"), true)
    );
    let id = server.rows(
        "SELECT CAST(id AS TEXT) FROM calls ORDER BY offered_at_ms DESC LIMIT 1",
        1,
        Duration::from_secs(5),
    )[0][0]
        .clone()
        .unwrap();

    let dan = server.login("2001");
    let ask = |token: &str, method: &str, path: &str, body: &str| {
        let (code, text) = server.http(method, path, Some(token), Some(body));
        (code, common::json_of(&text))
    };
    let (code, a) = ask(&dan, "GET", "/api/agents/2001", "");
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["state"], "wrap_up", "{a}");
    assert_eq!(a["owes_disposition"]["queue"], "service", "{a}");
    let available = r#"{"state":"available"}"#;
    let (code, v) = ask(&dan, "POST", "/api/agents/2001/state", available);
    assert_eq!(code, 409, "{v}");
    assert_eq!(
        v["error"],
        format!(
            "record the disposition of call {id} first (solved, escalated, callback, not_interested, do_not_call)"
        )
    );
    let path = format!("/api/calls/{id}/disposition");
    let (code, v) = ask(&dan, "POST", &path, r#"{"code":"sale"}"#);
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("one of solved, escalated"),
        "{v}"
    );
    let other = server.login("2002");
    let (code, v) = ask(&other, "POST", &path, r#"{"code":"solved"}"#);
    assert_eq!(code, 404, "another agent's call: {v}");
    let (code, v) = ask(
        &dan,
        "POST",
        &path,
        r#"{"code":"solved","note":"router reset"}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["queue"], "service", "{v}");
    let (code, v) = ask(&dan, "POST", &path, r#"{"code":"escalated"}"#);
    assert_eq!(code, 409, "once per call: {v}");
    let (code, v) = ask(&dan, "POST", "/api/agents/2001/state", available);
    assert_eq!((code, v["state"].as_str()), (200, Some("available")), "{v}");
    let rows = server.rows(
        "SELECT agent, code, queue, note FROM call_dispositions",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(
        rows[0],
        ["2001", "solved", "service", "router reset"].map(|s| Some(s.to_string()))
    );
}
