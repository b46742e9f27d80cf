//! The admin's console in Debian's Chromium (`tests/browser/admin.mjs`), against a copy of
//! the shipped IVR directory: the admin views a flow's source, uploads a prompt (a 22.05 kHz
//! stereo WAV, stored as 8 kHz mono) and plays it back in the page, is refused a file that is
//! not audio (nothing stored), reloads the flows, then breaks a flow file on disk and is
//! shown the errors while the running flows stay.

mod common;

use common::{Driver, Server, json_of, repo_root};
use std::process::Command;
use std::time::Duration;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn an_admin_views_flows_uploads_and_plays_a_prompt_and_sees_flow_errors() {
    let shots = repo_root().join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ivr = tmp.path().join("ivr");
    copy_dir(&repo_root().join("ivr-scripts"), &ivr);
    let server = Server::start(&[&format!("ivr.dir={}", ivr.display())]);

    let wav = tmp.path().join("offer.wav");
    let made = Command::new("sox")
        .args(["-n", "-r", "22050", "-c", "2", "-b", "16"])
        .arg(&wav)
        .args(["synth", "1.5", "sine", "440", "vol", "0.3"])
        .status()
        .expect("sox runs");
    assert!(made.success());
    let bad = tmp.path().join("notes.txt");
    std::fs::write(&bad, "this is not audio").unwrap();

    let base = format!("http://{}", server.http);
    let mut admin = Driver::start(
        "admin.mjs",
        &[
            ("BASE", base.as_str().as_ref()),
            ("ADMIN", "9900".as_ref()),
            ("PASSWORD", "demo9900".as_ref()),
            ("PROMPT_WAV", wav.as_os_str()),
            ("BAD_FILE", bad.as_os_str()),
            ("SHOTS", shots.as_os_str()),
        ],
    );
    let flows = admin.expect("flows", Duration::from_secs(60));
    let names: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        names.contains(&"main") && names.contains(&"menu"),
        "{flows}"
    );
    assert!(
        flows["source"].as_str().unwrap().contains("choices"),
        "the menu's source is shown: {flows}"
    );

    let up = admin.expect("uploaded", Duration::from_secs(30));
    assert!(
        up["stored"].as_str().unwrap().contains("spring-offer"),
        "{up}"
    );
    assert!(up["row"].as_str().unwrap().contains("1.5 s"), "{up}");
    let played = up["duration"].as_f64().unwrap();
    assert!((played - 1.5).abs() < 0.1, "the page plays it back: {up}");
    // On disk: converted for the media engine.
    let r = hound::WavReader::open(ivr.join("prompts/spring-offer.wav")).unwrap();
    assert_eq!((r.spec().sample_rate, r.spec().channels), (8000, 1));
    assert_eq!(r.duration(), 12000);

    let refused = admin.expect("refused", Duration::from_secs(30));
    assert!(
        refused["refused"].as_str().unwrap().starts_with("Upload:"),
        "{refused}"
    );
    assert_eq!(refused["brokenListed"], false, "{refused}");
    assert!(!ivr.join("prompts/broken.wav").exists());

    let reloaded = admin.expect("reloaded", Duration::from_secs(30));
    assert!(
        reloaded["reloaded"].as_str().unwrap().contains("menu"),
        "{reloaded}"
    );
    // A flow goes bad on disk: the admin sees why, the running flows stay.
    let menu = ivr.join("menu.toml");
    let text = std::fs::read_to_string(&menu).unwrap();
    std::fs::write(
        &menu,
        text.replace("queue = \"sales\"", "queue = \"nosuchqueue\""),
    )
    .unwrap();
    admin.go_on();
    let done = admin.expect("done", Duration::from_secs(30));
    let errors = done["errors"].as_str().unwrap();
    assert!(
        errors.contains("the running flows stay") && errors.contains("nosuchqueue"),
        "{done}"
    );
    assert_eq!(done["problems"], serde_json::json!([]), "{done}");
    let token = server.login("9900");
    let (code, text) = server.http("GET", "/api/ivr/flows", Some(&token), None);
    assert_eq!(code, 200);
    let v = json_of(&text);
    let running = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "menu")
        .unwrap();
    let source = running["source"].as_str().unwrap();
    assert!(
        source.contains("queue = \"sales\"") && !source.contains("nosuchqueue"),
        "the running menu flow is the one loaded before: {source}"
    );
}
