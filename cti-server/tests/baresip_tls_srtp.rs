//! SIP over TLS and SDES-SRTP with a phone nobody on the team wrote: baresip (Debian
//! `baresip-core`, libre's TLS and SRTP) trusts the server's self-signed certificate as its
//! CA, registers as agent 1001 over TLS with digest authentication, and calls the IVR with
//! `mediaenc=srtp-mand`: its offer is `RTP/SAVP` with an `a=crypto` key. The server answers
//! `RTP/SAVP` with a key of its own, decrypts what baresip sends (the caller leg counts
//! packets only after their authentication tag checked out) and encrypts what it sends: the
//! audio baresip decoded (its sndfile dump) holds the IVR's greeting.

mod common;

use common::{Server, free_port};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn baresip_registers_over_tls_and_calls_with_srtp() {
    let server = Server::start(&[
        "sip.tls_listen=127.0.0.1:0",
        // libre (baresip 1.0) refuses a 401 that also offers an algorithm it does not know.
        "sip.digest_algorithms=[\"MD5\"]",
        "ivr.entry=menu",
    ]);
    let sips = server.sips.expect("SIP over TLS");
    let cert = server.dir.path().join("data/tls/self-signed.crt");
    let phone = tempfile::tempdir().unwrap();
    let dir = phone.path();
    let tone = dir.join("tone.wav");
    let made = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&tone)
        .args(["synth", "30", "sine", "700", "vol", "0.5"])
        .status()
        .expect("sox runs");
    assert!(made.success());
    let config = format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{}\n\
         sip_cafile {}\n\
         audio_player aufile,/dev/null\n\
         audio_source aufile,{}\n\
         audio_alert aufile,/dev/null\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module aufile.so\n\
         module srtp.so\n\
         module sndfile.so\n\
         snd_path {}\n\
         module menu.so\n\
         module account.so\n",
        free_port(),
        cert.display(),
        tone.display(),
        dir.display()
    );
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:1001@127.0.0.1:{};transport=tls>;auth_pass=demo1001;mediaenc=srtp-mand;regint=600\n",
            sips.port()
        ),
    )
    .unwrap();
    let log = dir.join("baresip.log");
    let mut baresip = Command::new("baresip")
        .current_dir(dir)
        .arg("-f")
        .arg(dir)
        // Only loopback here (the tests run in a private network namespace).
        .args(["-4", "-n", "127.0.0.1", "-s", "-e", "/dial 100", "-t", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip runs (./scripts/test installs baresip-core)");
    let t0 = Instant::now();
    while baresip.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = baresip.kill();
            panic!("baresip did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let trace = std::fs::read_to_string(&log).unwrap_or_default();
    let context = || format!("baresip:\n{trace}\nserver:\n{}", server.log_tail(40));

    // Registered over TLS.
    let reg = server.rows(
        "SELECT extension, transport FROM registration_events WHERE event = 'registered'",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(
        reg.first(),
        Some(&vec![Some("1001".into()), Some("TLS".into())]),
        "{}",
        context()
    );
    // The call: answered by the IVR, the server's answer secure with a key of its own.
    assert!(trace.contains("RTP/SAVP"), "{}", context());
    assert!(
        trace.contains("SRTP is Enabled"),
        "baresip took our key: {}",
        context()
    );
    let answer = trace
        .split("SIP/2.0 200 OK")
        .find(|m| m.contains("m=audio"))
        .unwrap_or_else(|| panic!("no 200 with SDP\n{}", context()));
    assert!(
        answer.contains("RTP/SAVP") && answer.contains("a=crypto:"),
        "{answer}"
    );
    let rows = server.rows(
        "SELECT c.dialed, CASE WHEN c.answered_at_ms IS NOT NULL THEN '1' ELSE '0' END, CAST(l.packets_received AS TEXT)
         FROM calls c JOIN call_legs l ON l.call_id = c.id AND l.side = 'caller'",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(rows[0][0].as_deref(), Some("100"), "{}", context());
    assert_eq!(rows[0][1].as_deref(), Some("1"));
    let received: u64 = rows[0][2].as_deref().unwrap().parse().unwrap();
    assert!(
        received > 200,
        "the server decrypted {received} packets of baresip's SRTP\n{}",
        context()
    );
    // What baresip decoded from our SRTP is the greeting, not silence or noise it refused.
    let dump = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("no decoded dump\n{}", context()));
    let mut wav = hound::WavReader::open(&dump).unwrap();
    let samples: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    assert!(samples.len() > 8000 * 4, "{} samples", samples.len());
    let rms =
        (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    assert!(rms > 300.0, "baresip heard rms {rms:.0}\n{}", context());
}
