//! `cti-server backup` while the server runs, and `cti-server restore` after losing the data
//! directory: the restored server has what the backup held.

mod common;

use common::{Server, free_port, register_agent, repo_root, rows_at};
use std::process::Command;
use std::time::Duration;

fn cli(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cti-server"))
        .current_dir(repo_root())
        .arg("--config")
        .arg(repo_root().join("config/cti.toml"))
        .arg("--set")
        .arg(format!("storage.data_dir={}", data_dir.display()))
        .args(args)
        .output()
        .expect("run cti-server");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_backup_taken_while_running_restores_after_the_data_is_lost() {
    let server = Server::start(&[]);
    let reg = register_agent(server.sip, "1001", "demo1001", free_port());
    assert!(reg.success, "{}", reg.report());
    let count = |s: &Server| {
        s.rows(
            "SELECT CAST(COUNT(*) AS TEXT) FROM registration_events",
            1,
            Duration::from_secs(10),
        )[0][0]
            .clone()
            .unwrap()
    };
    let before = count(&server);
    assert_ne!(before, "0");
    let data = server.dir.path().join("data");
    let backup_dir = tempfile::tempdir().unwrap();
    let to = backup_dir.path().join("b");
    let (ok, out) = cli(&data, &["backup", "--to", to.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("backed up"), "{out}");
    // Into a directory that is not empty: refused, nothing touched.
    let (ok, out) = cli(&data, &["backup", "--to", to.to_str().unwrap()]);
    assert!(!ok && out.contains("not empty"), "{out}");
    drop(server);

    // The data directory is lost; restore, then start on it.
    let fresh = tempfile::tempdir().unwrap();
    let restored = fresh.path().join("data");
    let (ok, out) = cli(&restored, &["restore", "--from", to.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&restored, &["restore", "--from", "/nonexistent/backup"]);
    assert!(!ok && out.contains("not a backup"), "{out}");
    // The server starts on the restored data, which holds what the backup held.
    let data_set = format!("storage.data_dir={}", restored.display());
    let server = Server::start(&[data_set.as_str()]);
    let (status, _) = server.http_get("/healthz");
    assert_eq!(status, 200);
    let rows = rows_at(
        &format!("sqlite://{}", restored.join("cti.db").display()),
        "SELECT CAST(COUNT(*) AS TEXT) FROM registration_events",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(rows[0][0].as_deref(), Some(before.as_str()));
}
