//! Who may see what through the API, as users would meet it: staff log in with their name and
//! password and get a session token; an agent sees only their own things, a supervisor their
//! groups', an admin (or the configured API token) everything. Recordings come from real
//! calls (sipp carrier to sipp agent phones); every play of a recording, and every refused
//! one, is in the audit log. Failed logins are throttled.

mod common;

use common::{Server, free_port, json_of, register_agent, spawn_sipp};
use serde_json::Value;
use std::time::Duration;

const ADMIN_TOKEN: &str = "demo-api-token";

fn login(server: &Server, user: &str, password: &str) -> (u16, Value) {
    let body = format!(r#"{{"user":"{user}","password":"{password}"}}"#);
    let (code, text) = server.http("POST", "/api/login", None, Some(&body));
    (code, json_of(&text))
}

/// One 3-second carrier call to agent `ext`, answered by a sipp phone; waits for both.
fn call_agent(server: &Server, ext: &str) {
    let port = free_port();
    let reg = register_agent(server.sip, ext, &format!("demo{ext}"), port);
    assert!(reg.success, "{ext} registers\n{}", reg.report());
    let mp = free_port().to_string();
    let uas = spawn_sipp(
        None,
        "agent_uas.xml",
        port,
        &["-m", "1", "-mp", &mp, "-rtp_echo"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let mp = free_port().to_string();
    let run = spawn_sipp(
        Some(server.sip),
        "caller_basic.xml",
        free_port(),
        &["-s", ext, "-m", "1", "-mp", &mp],
    )
    .wait(Duration::from_secs(60));
    assert!(run.success, "call to {ext}\n{}", run.report());
    assert!(uas.wait(Duration::from_secs(20)).success);
}

/// Recording ids the token may list.
fn listed(server: &Server, token: &str) -> Vec<(i64, String)> {
    let (code, body) = server.http("GET", "/api/recordings", Some(token), None);
    assert_eq!(code, 200, "{body}");
    json_of(&body)["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["agent"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn each_role_sees_its_own_and_every_recording_access_is_audited() {
    let server = Server::start(&[]);
    call_agent(&server, "1001");
    call_agent(&server, "2001");
    // Both recordings indexed (the call records complete them).
    server.rows(
        "SELECT r.id FROM recordings r JOIN calls c ON c.id = r.call_id",
        2,
        Duration::from_secs(10),
    );

    let admin = listed(&server, ADMIN_TOKEN);
    assert_eq!(admin.len(), 2, "{admin:?}");
    let id_of = |agent: &str| admin.iter().find(|(_, a)| a == agent).unwrap().0;
    let (rec_1001, rec_2001) = (id_of("1001"), id_of("2001"));

    // The sales supervisor sees the sales agent's call only; the service one's, neither.
    let sales = server.login("9001");
    assert_eq!(
        listed(&server, &sales),
        vec![(rec_1001, "1001".to_string())]
    );
    let service = server.login("9002");
    assert_eq!(
        listed(&server, &service),
        vec![(rec_2001, "2001".to_string())]
    );
    let (code, _, wav) = server.http_get_raw(
        &format!("/api/recordings/{rec_1001}/audio"),
        &[("Authorization", &format!("Bearer {sales}"))],
    );
    assert_eq!(code, 200);
    assert_eq!(&wav[..4], b"RIFF");
    let (code, _, _) = server.http_get_raw(
        &format!("/api/recordings/{rec_2001}/audio"),
        &[("Authorization", &format!("Bearer {sales}"))],
    );
    assert_eq!(code, 404, "another group's recording is not there for them");

    // Agents: by default not even their own; never another agent's.
    let alice = server.login("1001");
    assert!(listed(&server, &alice).is_empty());
    for id in [rec_1001, rec_2001] {
        let (code, _, _) = server.http_get_raw(
            &format!("/api/recordings/{id}/audio"),
            &[("Authorization", &format!("Bearer {alice}"))],
        );
        assert_eq!(code, 404);
    }
    // Nor supervision's things or another agent's state.
    let bearer = Some(alice.as_str());
    assert_eq!(
        server.http("GET", "/api/monitor-sessions", bearer, None).0,
        403
    );
    assert_eq!(server.http("GET", "/api/agents/2001", bearer, None).0, 403);
    assert_eq!(server.http("GET", "/api/audit", bearer, None).0, 403);
    assert_eq!(server.http("POST", "/api/ivr/reload", bearer, None).0, 403);
    assert_eq!(server.http("GET", "/api/agents/1001", bearer, None).0, 200);
    assert_eq!(server.http("GET", "/api/queues/sales", bearer, None).0, 200);
    let (code, me) = server.http("GET", "/api/me", bearer, None);
    assert_eq!((code, json_of(&me)["role"].as_str()), (200, Some("agent")));

    // No token, a made-up token: 401.
    assert_eq!(server.http("GET", "/api/recordings", None, None).0, 401);
    assert_eq!(
        server.http("GET", "/api/recordings", Some("guess"), None).0,
        401
    );

    // The audit log has each play and each refusal, by whom.
    let (code, body) = server.http("GET", "/api/audit", Some(ADMIN_TOKEN), None);
    assert_eq!(code, 200, "{body}");
    let entries = json_of(&body)["entries"].as_array().unwrap().clone();
    let has = |actor: &str, action: &str, target: i64| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["action"] == action
                && e["target"].as_str() == Some(&*target.to_string())
        })
    };
    assert!(has("9001", "recording.audio", rec_1001), "{entries:#?}");
    assert!(has("9001", "recording.audio_refused", rec_2001));
    assert!(has("1001", "recording.audio_refused", rec_1001));
    assert!(has("1001", "recording.audio_refused", rec_2001));
    assert!(
        entries
            .iter()
            .any(|e| e["actor"] == "1001" && e["action"] == "login")
    );
}

#[test]
fn agents_may_hear_their_own_calls_when_the_configuration_says_so() {
    let server = Server::start(&["recording.agents_hear_own=true"]);
    call_agent(&server, "1001");
    call_agent(&server, "2001");
    server.rows(
        "SELECT r.id FROM recordings r JOIN calls c ON c.id = r.call_id",
        2,
        Duration::from_secs(10),
    );
    let alice = server.login("1001");
    let own = listed(&server, &alice);
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].1, "1001");
    let (code, _, _) = server.http_get_raw(
        &format!("/api/recordings/{}/audio", own[0].0),
        &[("Authorization", &format!("Bearer {alice}"))],
    );
    assert_eq!(code, 200);
    let theirs = listed(&server, ADMIN_TOKEN)
        .into_iter()
        .find(|(_, a)| a == "2001")
        .unwrap();
    let (code, _, _) = server.http_get_raw(
        &format!("/api/recordings/{}/audio", theirs.0),
        &[("Authorization", &format!("Bearer {alice}"))],
    );
    assert_eq!(code, 404);
}

#[test]
fn wrong_passwords_are_refused_then_throttled_and_a_new_password_ends_old_sessions() {
    let server = Server::start(&[]);
    assert_eq!(login(&server, "1001", "wrong").0, 401);
    assert_eq!(login(&server, "nobody", "demo1001").0, 401);
    // Five failures from one address (these tests' 127.0.0.1) hold it back, the right
    // password and other users too (the per-user limit is unit-tested).
    for _ in 0..3 {
        assert_eq!(login(&server, "1002", "nope").0, 401);
    }
    let (code, v) = login(&server, "1002", "demo1002");
    assert_eq!(code, 429, "{v}");
    assert!(v["retry_after_s"].as_u64().unwrap() > 0);
    assert_eq!(login(&server, "2001", "demo2001").0, 429);
    let (code, body) = server.http(
        "GET",
        "/api/audit?action=login_failed",
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(
        json_of(&body)["entries"].as_array().unwrap().len(),
        5,
        "{body}"
    );

    // (The address is held back too now; a fresh server for the rest.)
    drop(server);
    let server = Server::start(&[]);
    let first = server.login("2002");
    let second = server.login("2002");
    let change = r#"{"old":"demo2002","new":"short"}"#;
    assert_eq!(
        server
            .http("POST", "/api/me/password", Some(&first), Some(change))
            .0,
        400
    );
    let change = r#"{"old":"wrong-old","new":"a longer secret"}"#;
    assert_eq!(
        server
            .http("POST", "/api/me/password", Some(&first), Some(change))
            .0,
        403
    );
    let change = r#"{"old":"demo2002","new":"a longer secret"}"#;
    let (code, body) = server.http("POST", "/api/me/password", Some(&first), Some(change));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        server.http("GET", "/api/me", Some(&second), None).0,
        401,
        "sessions end"
    );
    assert_eq!(login(&server, "2002", "demo2002").0, 401);
    assert_eq!(login(&server, "2002", "a longer secret").0, 200);
    // Logging out ends the session.
    let t = server.login("2001");
    assert_eq!(server.http("POST", "/api/logout", Some(&t), None).0, 200);
    assert_eq!(server.http("GET", "/api/me", Some(&t), None).0, 401);
}

#[test]
fn retention_deletes_old_recordings_but_not_those_on_legal_hold() {
    // Kept 0.0001 days (8.6 s), swept every second.
    let server = Server::start(&[
        "recording.retention_days=0.0001",
        "recording.retention_sweep_s=1",
    ]);
    call_agent(&server, "1001");
    server.rows(
        "SELECT r.id FROM recordings r JOIN calls c ON c.id = r.call_id",
        1,
        Duration::from_secs(10),
    );
    let held = listed(&server, ADMIN_TOKEN)[0].0;
    let sales = server.login("9001");
    let hold = |id: i64, body: &str| {
        server.http(
            "POST",
            &format!("/api/recordings/{id}/legal-hold"),
            Some(&sales),
            Some(body),
        )
    };
    assert_eq!(
        hold(held, r#"{"hold":true}"#).0,
        400,
        "a hold needs a reason"
    );
    let (code, body) = hold(held, r#"{"hold":true,"reason":"complaint 4711"}"#);
    assert_eq!(code, 200, "{body}");

    call_agent(&server, "2001");
    let gone = server.rows(
        "SELECT CAST(r.id AS TEXT), r.path FROM recordings r WHERE r.deleted_at_ms IS NOT NULL",
        1,
        Duration::from_secs(30),
    );
    assert_eq!(gone.len(), 1, "the unheld recording went: {gone:?}");
    let (gone_id, gone_path): (i64, String) = (
        gone[0][0].as_deref().unwrap().parse().unwrap(),
        gone[0][1].clone().unwrap(),
    );
    assert_ne!(gone_id, held);
    assert!(
        !std::path::Path::new(&gone_path).exists(),
        "its file is gone"
    );
    let auth = ("Authorization", format!("Bearer {ADMIN_TOKEN}"));
    let (code, _, _) = server.http_get_raw(
        &format!("/api/recordings/{gone_id}/audio"),
        &[(auth.0, &auth.1)],
    );
    assert_eq!(code, 410);
    // The held one stays, past its retention, and plays.
    std::thread::sleep(Duration::from_secs(2));
    let (code, _, wav) = server.http_get_raw(
        &format!("/api/recordings/{held}/audio"),
        &[(auth.0, &auth.1)],
    );
    assert_eq!(code, 200);
    assert_eq!(&wav[..4], b"RIFF");
    // Both on record.
    let (_, body) = server.http("GET", "/api/audit", Some(ADMIN_TOKEN), None);
    let entries = json_of(&body)["entries"].as_array().unwrap().clone();
    assert!(entries.iter().any(|e| e["actor"] == "retention"
        && e["action"] == "recording.deleted"
        && e["target"].as_str() == Some(&*gone_id.to_string())));
    assert!(entries.iter().any(|e| e["actor"] == "9001"
        && e["action"] == "recording.legal_hold"
        && e["detail"] == "complaint 4711"));
    // Lifting the hold lets retention take it at the next sweep.
    assert_eq!(hold(held, r#"{"hold":false}"#).0, 200);
    let gone = server.rows(
        "SELECT r.id FROM recordings r WHERE r.deleted_at_ms IS NOT NULL",
        2,
        Duration::from_secs(10),
    );
    assert_eq!(gone.len(), 2);
}
