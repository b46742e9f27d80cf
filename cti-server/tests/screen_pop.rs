//! The screen pop, as an agent meets it: the agent's console holds a WebSocket
//! (`/api/events`), a customer calls the sales queue from their lead's *alternate* number
//! (spelled nationally), and while the agent's sipp phone rings (2 s before it answers) the
//! console gets the offer with that lead, the queue and the IVR path; afterwards the call is
//! on the lead's timeline with its recording. A caller no lead has gets a "new lead"
//! prefilled with their number in E.164.

mod common;

use common::{Server, free_port, json_of, register_agent, spawn_sipp};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn console(server: &Server, token: &str) -> Socket {
    let url = format!("ws://{}/api/events?token={token}", server.http);
    let (mut ws, _) = tungstenite::connect(url).expect("the events WebSocket opens");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let hello = next_event(&mut ws);
    assert_eq!(hello["type"], "hello");
    ws
}

fn next_event(ws: &mut Socket) -> Value {
    loop {
        match ws.read().expect("an event within 20 s") {
            tungstenite::Message::Text(t) => return json_of(t.as_str()),
            _ => continue,
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Agent `ext`'s phone registers and answers `calls` calls after ringing 2 s.
fn slow_phone(server: &Server, ext: &str, calls: u32) -> common::SippChild {
    let port = free_port();
    let reg = register_agent(server.sip, ext, &format!("demo{ext}"), port);
    assert!(reg.success, "{}", reg.report());
    let mp = free_port().to_string();
    let n = calls.to_string();
    let uas = spawn_sipp(
        None,
        "agent_uas_slow.xml",
        port,
        &["-m", &n, "-mp", &mp, "-rtp_echo"],
    );
    std::thread::sleep(Duration::from_millis(500));
    uas
}

fn call_from(sip: std::net::SocketAddr, from: &str, to: &str) -> common::SippRun {
    let mp = free_port().to_string();
    spawn_sipp(
        Some(sip),
        "caller_from.xml",
        free_port(),
        &["-s", to, "-m", "1", "-mp", &mp, "-key", "from_user", from],
    )
    .wait(Duration::from_secs(60))
}

#[test]
fn the_lead_pops_on_the_agents_console_while_the_phone_rings() {
    let server = Server::start(&[]);
    let sam = server.login("9001");
    let body = json!({
        "name": "Nora Lind",
        "phones": ["+49 30 999000", "0171 2223334"],
        "grade": "A",
        "owner": "1001",
        "source": "hq"
    });
    let (code, text) = server.http("POST", "/api/leads", Some(&sam), Some(&body.to_string()));
    assert_eq!(code, 201, "{text}");
    let lead = json_of(&text)["id"].as_i64().unwrap();

    let alice = server.login("1001");
    let mut ws = console(&server, &alice);
    let phone = slow_phone(&server, "1001", 2);

    // From the alternate number, spelled nationally, to the sales queue.
    let sip = server.sip;
    let caller = std::thread::spawn(move || call_from(sip, "01712223334", "110"));
    let pop = next_event(&mut ws);
    let popped_at = wall_ms();
    let run = caller.join().unwrap();
    assert!(run.success, "{}", run.report());
    assert_eq!(pop["type"], "offer", "{pop}");
    assert_eq!(pop["agent"], "1001");
    assert_eq!(pop["caller"], "01712223334");
    assert_eq!(pop["queue"], "sales");
    assert_eq!(pop["leads"][0]["id"], lead, "{pop}");
    assert_eq!(pop["leads"][0]["name"], "Nora Lind");
    assert_eq!(pop["leads"].as_array().unwrap().len(), 1);
    assert!(pop["new_lead"].is_null());
    assert!(
        pop["ivr_path"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "queue:sales"),
        "{pop}"
    );
    // Before the agent answered: the call record's connection time is later.
    let rows = server.rows(
        "SELECT CAST(connected_at_ms AS TEXT) FROM calls WHERE connected_at_ms IS NOT NULL",
        1,
        Duration::from_secs(10),
    );
    let connected: i64 = rows[0][0].as_deref().unwrap().parse().unwrap();
    assert!(
        popped_at < connected && pop["at_ms"].as_i64().unwrap() < connected,
        "popped at {popped_at} (server {}), answered at {connected}",
        pop["at_ms"]
    );

    // The call is on the lead's timeline, with its recording.
    let t0 = std::time::Instant::now();
    let call = loop {
        let (_, text) = server.http("GET", &format!("/api/leads/{lead}"), Some(&alice), None);
        let v = json_of(&text);
        if let Some(c) = v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "call")
        {
            break c.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no call on the timeline: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(call["actor"], "1001");
    assert_eq!(call["detail"]["call_id"], pop["call"]);
    assert_eq!(call["detail"]["direction"], "inbound");
    assert_eq!(call["detail"]["connected"], true);
    let recording = call["detail"]["recordings"][0].as_str().unwrap_or_default();
    assert!(recording.ends_with(".wav"), "{call}");
    assert!(std::path::Path::new(recording).exists());
    // And the recordings index files it under the lead and the queue.
    let (_, text) = server.http("GET", "/api/recordings", Some(&sam), None);
    let index = json_of(&text);
    let rec = index["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["call_id"] == pop["call"])
        .cloned()
        .unwrap_or_else(|| panic!("{index}"));
    assert_eq!(rec["queue"], "sales");
    assert_eq!(rec["lead_ids"], json!([lead]));
    assert_eq!(rec["agent"], "1001");

    // A number no lead has, straight to the agent: a new lead, prefilled.
    let run = call_from(server.sip, "0304445556", "1001");
    assert!(run.success, "{}", run.report());
    let pop = next_event(&mut ws);
    assert_eq!(pop["type"], "offer", "{pop}");
    assert!(pop["leads"].as_array().unwrap().is_empty(), "{pop}");
    assert_eq!(pop["new_lead"]["phones"][0], "+49304445556");
    assert!(pop["queue"].is_null());
    assert!(phone.wait(Duration::from_secs(20)).success);

    // Without a valid token there is no socket.
    let url = format!("ws://{}/api/events?token=guess", server.http);
    assert!(tungstenite::connect(url).is_err());
}
