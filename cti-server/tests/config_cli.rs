//! The binary's configuration handling as an operator meets it: a broken file stops the server
//! with exit code 2 and a message naming the file, the line and the key; `--set` overrides.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cti-server"))
        .args(args)
        .output()
        .expect("run cti-server");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_type_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[sip]\ndomain = \"x\"\nt1_ms = \"fast\"\n").unwrap();
    let (code, err) = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("t1_ms"), "{err}");
}

#[test]
fn an_unknown_key_and_a_missing_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "[http]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let (code, err) = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lisen") && err.contains("line 2"), "{err}");
    let (code, err) = run(&["--config", "/nonexistent/cti.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/cti.toml"), "{err}");
}

#[test]
fn a_bad_override_is_refused_before_anything_starts() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/cti.toml");
    let (code, err) = run(&["--config", cfg, "--set", "media.rtp_ports=9-3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rtp_ports"), "{err}");
    let (code, err) = run(&["--config", cfg, "--set", "sip.listen"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sip.listen"), "{err}");
}

#[test]
fn an_overflow_to_an_unknown_queue_names_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.toml");
    std::fs::write(
        &path,
        "[[queues]]\nname = \"sales\"\nmax_wait_s = 60\noverflow = { queue = \"servce\" }\n",
    )
    .unwrap();
    let (code, err) = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("queues.toml") && err.contains("line 4"),
        "{err}"
    );
    assert!(err.contains("\"servce\"") && err.contains("sales"), "{err}");
}

#[test]
fn broken_ivr_flows_stop_the_server_naming_file_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("main.toml"),
        "start = \"m\"\n[nodes.m]\ntype = \"route\"\nflow = \"other\"\n\n[nodes.x]\ntype = \"route\"\nagent = \"1001\"\n",
    )
    .unwrap();
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/cti.toml");
    let dir_set = format!("ivr.dir={}", flows.display());
    let (code, err) = run(&["--config", cfg, "--set", &dir_set]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("main.toml"), "{err}");
    assert!(
        err.contains("node \"m\"") && err.contains("\"other\""),
        "{err}"
    );
    assert!(
        err.contains("node \"x\"") && err.contains("unreachable"),
        "{err}"
    );
    // Agent 9999 is not a configured extension.
    std::fs::write(
        flows.join("main.toml"),
        "start = \"x\"\n[nodes.x]\ntype = \"route\"\nagent = \"9999\"\n",
    )
    .unwrap();
    let (code, err) = run(&["--config", cfg, "--set", &dir_set]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown agent \"9999\""), "{err}");
    // A valid set without the entry flow is refused too.
    std::fs::write(
        flows.join("main.toml"),
        "start = \"x\"\n[nodes.x]\ntype = \"route\"\nagent = \"1001\"\n",
    )
    .unwrap();
    let (code, err) = run(&[
        "--config",
        cfg,
        "--set",
        &dir_set,
        "--set",
        "ivr.entry=nope",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ivr.entry") && err.contains("nope"), "{err}");
}

#[test]
fn calling_hours_that_cannot_be_read_stop_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hours.toml");
    std::fs::write(
        &path,
        "[dialing]\ncalling_hours = [{ days = [\"Moonday\"], from = \"09:00\", to = \"17:00\" }]\n",
    )
    .unwrap();
    let (code, err) = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("dialing: `calling_hours[0].days`: unknown day \"moonday\""),
        "{err}"
    );
}
