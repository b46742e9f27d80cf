//! Moving a center from SQLite to PostgreSQL (`cti-server move-db`), on a database with
//! calls, their recordings, leads with their timelines, users and their audit log: a server
//! on SQLite takes a recorded sipp call and has leads created and imported; it is stopped,
//! moved, and a server on the PostgreSQL database then serves the same records: the call
//! and its legs, the recording (listed, and its audio with the SHA-256 the index holds), the
//! leads and their timelines, the users' logins; new rows get new ids; a second move into the
//! filled database is refused.
//!
//! Needs the PostgreSQL server of `CTI_TEST_POSTGRES` (the test command starts one); without
//! it the test says so and does nothing.

mod common;

use common::{
    Server, TonePeer, call, new_postgres_database, postgres_admin_url, probe_agent, probe_call,
};
use serde_json::json;
use std::time::Duration;

fn move_db(server: &Server, to: &str) -> std::process::Output {
    let sqlite = server.database_url();
    std::process::Command::new(env!("CARGO_BIN_EXE_cti-server"))
        .current_dir(common::repo_root())
        .arg("--config")
        .arg(common::repo_root().join("config/cti.toml"))
        .arg("--set")
        .arg(format!("storage.database_url={sqlite}"))
        .args(["move-db", "--to", to])
        .output()
        .expect("cti-server move-db runs")
}

#[test]
fn a_sqlite_center_moves_to_postgresql_with_its_calls_recordings_and_leads() {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("no PostgreSQL (CTI_TEST_POSTGRES unset): nothing to move to");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("cti.db").display());
    let mut old = Server::start(&[&format!("storage.database_url={sqlite}")]);
    // A recorded call from a carrier to agent 1001's phone.
    let (agent, agent_media) = probe_agent(&old, "1001");
    let (caller, media, target) = probe_call(&old, "1001");
    let customer = TonePeer::tone(media, target.expect("answered"), 600.0);
    let to_agent = common::server_media(&agent, Duration::from_secs(10)).expect("agent SDP");
    let staff = TonePeer::tone(agent_media, to_agent, 1000.0);
    assert!(caller.wait(Duration::from_secs(30)).success);
    drop((customer, staff, agent));
    let recordings = old.rows(
        "SELECT CAST(id AS TEXT), sha256, path FROM recordings",
        1,
        Duration::from_secs(10),
    );
    let (recording_id, sha256) = (
        recordings[0][0].clone().unwrap(),
        recordings[0][1].clone().unwrap(),
    );
    // Leads: one created by an agent, two imported, and the caller's call on none.
    let alice = old.login("1001");
    let (code, lead) = call(
        &old,
        "POST",
        "/api/leads",
        &alice,
        Some(
            json!({"name": "Clara Braun", "phones": ["030 555 0111"], "grade": "H", "source": "web"}),
        ),
    );
    assert_eq!(code, 201, "{lead}");
    let clara = lead["id"].as_i64().unwrap();
    let sam = old.login("9001");
    let csv = "name,phone,grade\nDieter Hahn,030 5550112,A\nEva Lang,030 5550113,B\n";
    let (code, report) = call(
        &old,
        "POST",
        "/api/leads/import",
        &sam,
        Some(
            json!({"csv": csv, "columns": {"name": "name", "phones": ["phone"], "grade": "grade"}, "duplicates": "skip", "source": "event"}),
        ),
    );
    assert_eq!(code, 200, "{report}");
    let count = |server: &Server, table: &str| -> i64 {
        server.rows(
            &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"),
            1,
            Duration::ZERO,
        )[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    };
    let tables = [
        "calls",
        "call_legs",
        "recordings",
        "leads",
        "lead_phones",
        "lead_events",
        "users",
        "audit_log",
    ];
    let before: Vec<i64> = tables.iter().map(|t| count(&old, t)).collect();
    assert!(before.iter().all(|n| *n > 0), "{tables:?}: {before:?}");
    let status = old.terminate();
    assert!(status.success(), "{status:?}");

    // The move.
    let pg = new_postgres_database(&admin);
    let out = move_db(&old, &pg);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("moved ") && printed.contains("recordings:"),
        "{printed}"
    );

    // A server on PostgreSQL has it all (the same recordings directory: files stay put).
    let new = Server::start(&[
        &format!("storage.database_url={pg}"),
        &format!(
            "storage.recordings_dir={}",
            old.dir.path().join("rec").display()
        ),
    ]);
    let after: Vec<i64> = tables.iter().map(|t| count(&new, t)).collect();
    assert_eq!(
        before[..tables.len() - 1],
        after[..tables.len() - 1],
        "{tables:?}"
    );
    // Passwords moved with the users: the same login works.
    let ada = new.login("9900");
    let (code, list) = call(&new, "GET", "/api/recordings", &ada, None);
    assert_eq!(code, 200, "{list}");
    assert!(list.to_string().contains(&sha256), "{list}");
    let (code, _, audio) = new.http_get_raw(
        &format!("/api/recordings/{recording_id}/audio"),
        &[("Authorization", &format!("Bearer {ada}"))],
    );
    assert_eq!(code, 200);
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&audio)), sha256);
    let (code, lead) = call(&new, "GET", &format!("/api/leads/{clara}"), &ada, None);
    assert_eq!(code, 200, "{lead}");
    assert_eq!(lead["name"], "Clara Braun");
    assert!(
        lead["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "{lead}"
    );
    let (code, found) = call(&new, "GET", "/api/leads?q=Hahn", &ada, None);
    assert_eq!(code, 200, "{found}");
    assert!(found.to_string().contains("Dieter Hahn"), "{found}");
    // New rows continue after the moved ids.
    let (code, lead) = call(
        &new,
        "POST",
        "/api/leads",
        &ada,
        Some(json!({"name": "Frank Neu", "phones": ["030 555 0114"], "source": "web"})),
    );
    assert_eq!(code, 201, "{lead}");
    assert!(lead["id"].as_i64().unwrap() > clara, "{lead}");
    let calls = new.calls(1, Duration::from_secs(5));
    assert_eq!(calls[0].agent.as_deref(), Some("1001"));
    assert!(calls[0].answered);
    drop(new);

    // Into a database that holds data already: refused, nothing changed.
    let again = move_db(&old, &pg);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already holds"), "{err}");
}
