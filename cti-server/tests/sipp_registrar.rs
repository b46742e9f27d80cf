//! The registrar and OPTIONS handling driven by sipp (Debian `sip-tester`), a peer we did not
//! write: digest REGISTER with the right and a wrong password, a stale nonce, and OPTIONS load.

mod common;

use common::{Server, sipp};

#[test]
fn sipp_registers_with_digest_over_udp_and_tcp() {
    let server = Server::start(&[]);
    for transport in ["u1", "t1"] {
        let run = sipp(
            server.sip,
            Some("register_auth.xml"),
            &[
                "-s",
                "1001",
                "-au",
                "1001",
                "-ap",
                "demo1001",
                "-m",
                "1",
                "-t",
                transport,
                "-max_socket",
                "100",
            ],
        );
        assert!(run.success, "transport {transport}\n{}", run.report());
        assert_eq!(run.totals(), (1, 0), "{}", run.report());
    }
}

#[test]
fn sipp_wrong_password_is_refused() {
    let server = Server::start(&[]);
    let run = sipp(
        server.sip,
        Some("register_wrong_password.xml"),
        &[
            "-s",
            "1002",
            "-au",
            "1002",
            "-ap",
            "not-the-password",
            "-m",
            "3",
        ],
    );
    assert!(run.success, "{}", run.report());
    assert_eq!(run.totals(), (3, 0), "{}", run.report());
    // And no binding was made.
    let (_, body) = server.http_get("/healthz");
    assert!(body.contains("\"registrations\":0"), "{body}");
}

#[test]
fn sipp_stale_nonce_is_rechallenged_then_accepted() {
    let server = Server::start(&["sip.nonce_ttl_s=1"]);
    let run = sipp(
        server.sip,
        Some("register_stale.xml"),
        &["-s", "2001", "-au", "2001", "-ap", "demo2001", "-m", "1"],
    );
    assert!(run.success, "{}", run.report());
    let (_, body) = server.http_get("/healthz");
    assert!(body.contains("\"registrations\":1"), "{body}");
}

#[test]
fn sipp_options_500_per_second_for_10_seconds_without_failure() {
    let server = Server::start(&["log.level=warn"]);
    let run = sipp(
        server.sip,
        Some("options.xml"),
        &[
            "-s", "probe", "-r", "500", "-rp", "1000", "-m", "5000", "-l", "2000",
        ],
    );
    assert!(run.success, "{}", run.report());
    assert_eq!(run.totals(), (5000, 0), "{}", run.report());
}
