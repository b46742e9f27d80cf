//! Live supervision, end to end with real peers: a carrier (sipp) calls agent 1001 (a sipp
//! phone), and supervisor 9001 dials `*331001` from a sipp phone that answers the server's
//! digest challenge. The media ends of all three are sockets this test owns, each sending
//! its own tone: the customer 1 kHz, the agent 600 Hz, the supervisor 1.4 kHz. What each one
//! receives says who hears whom:
//!
//! - listen: the supervisor hears both parties, nobody hears the supervisor;
//! - whisper (key 2): the agent hears the supervisor, the customer does not;
//! - barge (key 3): both do; back to listen (from the console, through the API): neither.
//!
//! The call's recording must carry the supervisor in its right channel (what the customer
//! hears) only while barging, never while whispering; the audit log has the session with its
//! modes. Supervisors of other groups and agents are refused 403.

mod common;

use common::{
    Server, SippChild, TonePeer, free_port, probe_agent, probe_call_for, server_media, spawn_sipp,
    tone_amplitude,
};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const CUSTOMER_HZ: f64 = 1000.0;
const AGENT_HZ: f64 = 600.0;
const SUPERVISOR_HZ: f64 = 1400.0;

fn log_tail(server: &Server) -> String {
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// `user` (password `demo<user>`) dials the monitor code for `agent` with `scenario`.
fn monitor_call(
    server: &Server,
    scenario: &str,
    user: &str,
    agent: &str,
) -> (SippChild, UdpSocket) {
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = media.local_addr().unwrap().port().to_string();
    let mp = free_port().to_string();
    let password = format!("demo{user}");
    let dialed = format!("*33{agent}");
    let sipp = spawn_sipp(
        Some(server.sip),
        scenario,
        free_port(),
        &[
            "-s", &dialed, "-m", "1", "-mp", &mp, "-key", "rtp_port", &key, "-au", user, "-ap",
            &password,
        ],
    );
    (sipp, media)
}

/// Share of the packets `peer` received in [from, to) that carry `hz` (0 with none).
fn share(peer: &TonePeer, hz: f64, from: Instant, to: Instant) -> f64 {
    let (n, with) = peer.heard_tone(hz, from, to);
    if n == 0 {
        return 0.0;
    }
    f64::from(with) / f64::from(n)
}

#[test]
fn a_supervisor_listens_whispers_and_barges_from_a_sip_phone() {
    let server = Server::start(&[]);

    // Refusals first: a supervisor of another group, and an agent.
    for user in ["9002", "2001"] {
        let (refused, _) = monitor_call(&server, "supervisor_refused.xml", user, "1001");
        let run = refused.wait(Duration::from_secs(30));
        assert!(
            run.success,
            "{user} was not refused 403\n{}\n{}",
            run.report(),
            log_tail(&server)
        );
    }

    let refused = server.rows(
        "SELECT actor, target, detail FROM audit_log WHERE action = 'monitor_refused'
         ORDER BY id",
        2,
        Duration::from_secs(10),
    );
    let refused: Vec<Vec<&str>> = refused
        .iter()
        .map(|r| r.iter().map(|c| c.as_deref().unwrap_or("")).collect())
        .collect();
    assert_eq!(
        refused,
        [
            ["9002", "1001", "agent outside the supervisor's groups"],
            ["2001", "1001", "not a supervisor"]
        ],
        "refusals are in the audit log"
    );

    let (agent_phone, agent_media) = probe_agent(&server, "1001");
    let (customer_sipp, customer_media, to_customer_leg) =
        probe_call_for(&server, "1001", Duration::from_secs(30));
    let to_customer_leg = to_customer_leg.unwrap_or_else(|| {
        panic!(
            "the customer's call was not answered\n{}",
            log_tail(&server)
        )
    });
    let to_agent_leg = server_media(&agent_phone, Duration::from_secs(5))
        .expect("the agent's phone saw the server's offer");
    let customer = TonePeer::tone(customer_media, to_customer_leg, CUSTOMER_HZ);
    let agent = TonePeer::tone(agent_media, to_agent_leg, AGENT_HZ);
    std::thread::sleep(Duration::from_millis(800));

    let monitor_dialed = Instant::now();
    let (sup_sipp, sup_media) = monitor_call(&server, "supervisor_monitor.xml", "9001", "1001");
    let to_sup_leg = server_media(&sup_sipp, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the monitor call was not answered\n{}", log_tail(&server)));
    let supervisor = TonePeer::tone(sup_media, to_sup_leg, SUPERVISOR_HZ);

    // Each mode for 1.5 s; the first 400 ms after a switch are left out of the measure
    // (the key's own packets, the mixer's fade).
    let window = |settle: Instant| {
        std::thread::sleep(Duration::from_millis(1500));
        (settle + Duration::from_millis(400), Instant::now())
    };
    let listen = window(Instant::now());
    // The supervisors' wall: the sales supervisor sees the call, talking, with themselves
    // listening; the service supervisor does not see it.
    let login = |user: &str| server.login(user);
    let calls = |token: &str| {
        let (code, text) = server.http("GET", "/api/calls", Some(token), None);
        assert_eq!(code, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["calls"].as_array().unwrap().clone()
    };
    let sam = login("9001");
    let seen = calls(&sam);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["agent"], "1001");
    assert_eq!(seen[0]["state"], "talking");
    assert!(seen[0]["connected_at_ms"].as_i64().is_some());
    assert_eq!(seen[0]["monitors"][0]["mode"], "listen", "{seen:#?}");
    assert!(calls(&login("9002")).is_empty());
    let monitor_call = seen[0]["monitors"][0]["call"].as_u64().unwrap();
    let switch = |token: &str, mode: &str| {
        server.http(
            "POST",
            &format!("/api/monitors/{monitor_call}/mode"),
            Some(token),
            Some(&format!(r#"{{"mode":"{mode}"}}"#)),
        )
    };
    supervisor.press('2');
    let whisper = window(Instant::now());
    supervisor.press('3');
    let barge = window(Instant::now());
    // Back to listening from the console (the API), as key 1 would; nobody else may.
    assert_eq!(switch(&login("9002"), "listen").0, 404);
    assert_eq!(switch(&login("1001"), "listen").0, 404);
    assert_eq!(switch(&sam, "shout").0, 400);
    let (code, body) = switch(&sam, "listen");
    assert_eq!(code, 200, "{body}");
    let listen_again = window(Instant::now());
    let monitored = (monitor_dialed, Instant::now());

    let report = |name: &str, (from, to): (Instant, Instant)| {
        format!(
            "{name}: supervisor hears customer {:.2} agent {:.2}; agent hears supervisor {:.2} customer {:.2}; customer hears supervisor {:.2} agent {:.2}",
            share(&supervisor, CUSTOMER_HZ, from, to),
            share(&supervisor, AGENT_HZ, from, to),
            share(&agent, SUPERVISOR_HZ, from, to),
            share(&agent, CUSTOMER_HZ, from, to),
            share(&customer, SUPERVISOR_HZ, from, to),
            share(&customer, AGENT_HZ, from, to),
        )
    };
    let all = [
        report("listen", listen),
        report("whisper", whisper),
        report("barge", barge),
        report("listen again", listen_again),
    ]
    .join("\n");
    eprintln!("{all}");
    let ctx = format!("{all}\nserver log:\n{}", log_tail(&server));
    let (hi, lo) = (0.8, 0.05);
    for (from, to) in [listen, whisper, barge, listen_again] {
        // Whatever the mode, the supervisor hears both and the parties each other.
        assert!(share(&supervisor, CUSTOMER_HZ, from, to) > hi, "{ctx}");
        assert!(share(&supervisor, AGENT_HZ, from, to) > hi, "{ctx}");
        assert!(share(&agent, CUSTOMER_HZ, from, to) > hi, "{ctx}");
        assert!(share(&customer, AGENT_HZ, from, to) > hi, "{ctx}");
    }
    for (from, to) in [listen, listen_again] {
        assert!(share(&agent, SUPERVISOR_HZ, from, to) < lo, "{ctx}");
        assert!(share(&customer, SUPERVISOR_HZ, from, to) < lo, "{ctx}");
    }
    assert!(
        share(&agent, SUPERVISOR_HZ, whisper.0, whisper.1) > hi,
        "{ctx}"
    );
    assert!(
        share(&customer, SUPERVISOR_HZ, whisper.0, whisper.1) < lo,
        "{ctx}"
    );
    assert!(share(&agent, SUPERVISOR_HZ, barge.0, barge.1) > hi, "{ctx}");
    assert!(
        share(&customer, SUPERVISOR_HZ, barge.0, barge.1) > hi,
        "{ctx}"
    );

    // The monitor came in and switched modes three times without a gap in the call: the
    // parties' packets kept coming every 20 ms, each carrying the other's voice.
    let span_packets = (monitored.1 - monitored.0).as_millis() as u32 / 20;
    for (who, peer, hz) in [
        ("customer", &customer, AGENT_HZ),
        ("agent", &agent, CUSTOMER_HZ),
    ] {
        let (n, with) = peer.heard_tone(hz, monitored.0, monitored.1);
        eprintln!("{who}: {with} of {n} packets carry the other party ({span_packets} expected)");
        assert!(
            n >= span_packets * 95 / 100 && with >= span_packets * 95 / 100,
            "{who} heard {with} of {n} packets of the other party, {span_packets} expected\n{ctx}"
        );
    }

    // The customer hangs up: the agent's call ends, and the supervisor's phone gets a BYE.
    drop(customer);
    let run = customer_sipp.wait(Duration::from_secs(40));
    assert!(run.success, "customer call\n{}", run.report());
    let run = sup_sipp.wait(Duration::from_secs(15));
    assert!(
        run.success,
        "the supervisor's phone did not get its BYE\n{}\n{}",
        run.report(),
        log_tail(&server)
    );
    let run = agent_phone.wait(Duration::from_secs(15));
    assert!(run.success, "agent phone\n{}", run.report());
    drop((agent, supervisor));

    // The audit log: who, whom, the modes in order, and how it ended.
    let rows = server.rows(
        "SELECT supervisor, agent, modes, CAST(connected AS TEXT), outcome,
                CAST(ended_at_ms - started_at_ms AS TEXT)
         FROM monitor_sessions",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[0].as_deref(), Some("9001"));
    assert_eq!(row[1].as_deref(), Some("1001"));
    let modes: Vec<serde_json::Value> = serde_json::from_str(row[2].as_deref().unwrap()).unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert_eq!(names, ["listen", "whisper", "barge", "listen"]);
    assert_eq!(row[3].as_deref(), Some("1"));
    assert_eq!(row[4].as_deref(), Some("the monitored call ended"));
    let lasted: i64 = row[5].as_deref().unwrap().parse().unwrap();
    assert!(
        (5_000..40_000).contains(&lasted),
        "session lasted {lasted} ms"
    );

    // The recording: the supervisor is in the customer's (right) channel for about the barge
    // and never in the left; the whisper is nowhere in it.
    let rows = server.rows(
        "SELECT r.path FROM recordings r JOIN calls c ON c.id = r.call_id
         WHERE c.agent = '1001' AND r.monitor_call_id IS NULL",
        1,
        Duration::from_secs(10),
    );
    let path = rows[0][0].clone().unwrap();
    let mut wav = hound::WavReader::open(&path).expect("the call's WAV");
    let samples: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
    let (mut left_sup, mut right_sup, mut right_agent) = (0usize, 0usize, 0usize);
    let frames = samples.len() / 2 / 160;
    for f in samples.chunks_exact(320) {
        let left: Vec<i16> = f.iter().step_by(2).copied().collect();
        let right: Vec<i16> = f.iter().skip(1).step_by(2).copied().collect();
        left_sup += usize::from(tone_amplitude(&left, SUPERVISOR_HZ) > 1000.0);
        right_sup += usize::from(tone_amplitude(&right, SUPERVISOR_HZ) > 1000.0);
        right_agent += usize::from(tone_amplitude(&right, AGENT_HZ) > 1000.0);
    }
    let barge_frames = (barge.1 - barge.0 + Duration::from_millis(400)).as_millis() as usize / 20;
    let ctx = format!(
        "{frames} frames: supervisor left {left_sup} right {right_sup}, agent right {right_agent}; barge about {barge_frames}"
    );
    eprintln!("recording: {ctx}");
    assert_eq!(left_sup, 0, "{ctx}");
    assert!(right_agent > frames / 2, "{ctx}");
    assert!(
        right_sup > barge_frames * 7 / 10 && right_sup < barge_frames * 13 / 10 + 10,
        "the supervisor is in the customer's channel for the barge only: {ctx}"
    );

    // The supervisor's own track: their voice on the left from the first listen to the end
    // (the whisper is kept here), nobody else's; the right silent.
    let rows = server.rows(
        "SELECT r.path, CAST(r.monitor_call_id AS TEXT) FROM recordings r
         WHERE r.monitor_call_id IS NOT NULL",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(rows.len(), 1, "one supervisor track");
    let mut wav = hound::WavReader::open(rows[0][0].as_deref().unwrap()).unwrap();
    let samples: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
    let (mut sup, mut others, mut right) = (0usize, 0usize, 0usize);
    let frames = samples.len() / 320;
    for f in samples.chunks_exact(320) {
        let left: Vec<i16> = f.iter().step_by(2).copied().collect();
        sup += usize::from(tone_amplitude(&left, SUPERVISOR_HZ) > 1000.0);
        others += usize::from(
            tone_amplitude(&left, CUSTOMER_HZ) > 1000.0 || tone_amplitude(&left, AGENT_HZ) > 1000.0,
        );
        right += usize::from(f.iter().skip(1).step_by(2).any(|&x| x != 0));
    }
    let ctx = format!("track: {frames} frames, supervisor {sup}, others {others}, right {right}");
    eprintln!("{ctx}");
    assert!(frames > 250, "{ctx}");
    assert!(sup > frames * 8 / 10, "{ctx}");
    assert_eq!((others, right), (0, 0), "{ctx}");
}
