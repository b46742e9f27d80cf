//! Click-to-dial's rules over the REST API and the console's WebSocket, against the real
//! server and database: what is not a phone number, a lead the agent may not work, the
//! do-not-call list, the calling hours and a console without its phone are refused with the
//! rule that refused them, and the rule-based refusals are in the audit log. The do-not-call
//! list's own API: anybody adds, supervisors and admins read and remove. (A call that goes
//! through is `browser_click_to_dial.rs`, with Chromium and sipp.)

mod common;

use common::{Server, json_of};
use serde_json::{Value, json};
use std::time::Duration;

fn place(server: &Server, token: &str, body: Value) -> (u16, Value) {
    let (code, text) = server.http("POST", "/api/calls", Some(token), Some(&body.to_string()));
    (code, json_of(&text))
}

fn audited_refusals(server: &Server) -> Vec<Value> {
    let admin = server.login("9900");
    let (code, text) = server.http("GET", "/api/audit?action=dial_refused", Some(&admin), None);
    assert_eq!(code, 200, "{text}");
    json_of(&text)["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn calls_break_no_rule_and_the_do_not_call_list_is_kept_by_role() {
    let mut server = Server::start(&["dialing.calling_hours=[]"]);
    let alice = server.login("1001");
    let sam = server.login("9001");

    let (code, v) = place(&server, &alice, json!({ "number": "call me maybe" }));
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("\"call me maybe\" is not a phone number"))
    );
    let (code, v) = place(&server, &alice, json!({}));
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("no number to call"))
    );
    let (code, v) = place(&server, &alice, json!({ "lead": 424242 }));
    assert_eq!((code, v["error"].as_str()), (404, Some("no lead 424242")));
    // Another agent's lead is not Alice's to call (and does not show it exists).
    let bobs = json!({ "name": "Bob's customer", "phones": ["030 5550301"], "owner": "1002" });
    let (code, text) = server.http("POST", "/api/leads", Some(&sam), Some(&bobs.to_string()));
    assert_eq!(code, 201, "{text}");
    let bobs = json_of(&text)["id"].as_i64().unwrap();
    let (code, v) = place(&server, &alice, json!({ "lead": bobs }));
    assert_eq!(
        (code, v["error"].clone()),
        (404, json!(format!("no lead {bobs}")))
    );

    // The do-not-call list: an agent records the customer's wish (any spelling of the
    // number), may not read or change the list; a supervisor may.
    let add = |token: &str, number: &str| {
        let body = json!({ "number": number, "reason": "asked on the phone" }).to_string();
        let (code, text) = server.http("POST", "/api/dnc", Some(token), Some(&body));
        (code, json_of(&text))
    };
    let (code, v) = add(&alice, "030 5550302");
    assert_eq!(
        (code, v["number"].as_str(), v["added"].as_bool()),
        (201, Some("+49305550302"), Some(true))
    );
    let (code, v) = add(&alice, "+49 30 5550302");
    assert_eq!((code, v["added"].as_bool()), (200, Some(false)));
    assert_eq!(add(&alice, "not a number").0, 400);
    // A malformed body gets a JSON error like every other refusal.
    for path in ["/api/dnc", "/api/calls"] {
        let (code, text) = server.http("POST", path, Some(&alice), Some(r#"{"phone": 1}"#));
        assert_eq!(code, 400, "{path}: {text}");
        assert!(json_of(&text)["error"].is_string(), "{path}: {text}");
    }
    assert_eq!(server.http("GET", "/api/dnc", Some(&alice), None).0, 403);
    assert_eq!(
        server
            .http("DELETE", "/api/dnc/+49305550302", Some(&alice), None)
            .0,
        403
    );
    let (code, text) = server.http("GET", "/api/dnc", Some(&sam), None);
    assert_eq!(code, 200, "{text}");
    let list = json_of(&text);
    assert_eq!(list["numbers"][0]["added_by"], "1001", "{list}");
    assert_eq!(list["numbers"][0]["reason"], "asked on the phone", "{list}");

    // Calling that number is refused, whichever way it is written, and audited.
    let (code, v) = place(&server, &alice, json!({ "number": "0049 30 5550302" }));
    assert_eq!(
        (code, v["error"].as_str()),
        (
            403,
            Some("the number is on the do-not-call list (asked on the phone)")
        )
    );
    let refusals = audited_refusals(&server);
    assert!(
        refusals.iter().any(|e| e["actor"] == "1001"
            && e["target"] == "+49305550302"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("do-not-call list")),
        "{refusals:?}"
    );
    // Off the list again (by a supervisor), it passes the rules; Alice has no console phone.
    assert_eq!(
        server
            .http("DELETE", "/api/dnc/030%205550302", Some(&sam), None)
            .0,
        200
    );
    assert_eq!(
        server
            .http("DELETE", "/api/dnc/030%205550302", Some(&sam), None)
            .0,
        404
    );
    let (code, v) = place(&server, &alice, json!({ "number": "030 5550302" }));
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("phone is not connected"),
        "{v}"
    );

    // The console's socket says the same.
    let url = format!("ws://{}/api/events?token={alice}", server.http);
    let (mut ws, _) = tungstenite::connect(url).expect("the events WebSocket opens");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    let mut ask = |msg: Value| -> Value {
        ws.send(tungstenite::Message::Text(msg.to_string().into()))
            .unwrap();
        loop {
            if let tungstenite::Message::Text(t) = ws.read().expect("an event") {
                let v = json_of(t.as_str());
                if v["type"] != "hello" {
                    return v;
                }
            }
        }
    };
    let e = ask(json!({ "op": "dial" }));
    assert_eq!(
        (e["type"].as_str(), e["error"].as_str()),
        (Some("error"), Some("no number or lead"))
    );
    let e = ask(json!({ "op": "dial", "number": "030 5550302" }));
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("phone is not connected"),
        "{e}"
    );
    assert!(server.is_running(), "the server goes on");
}

#[test]
fn outside_the_calling_hours_nobody_is_called() {
    // Open all week, but today (and the days around it, whatever the time zone) is a
    // holiday.
    let day = |offset: i64| {
        let t = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * offset);
        t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
    };
    let holidays = format!(
        "dialing.holidays=[\"{}\",\"{}\",\"{}\"]",
        day(-1),
        day(0),
        day(1)
    );
    let server = Server::start(&[
        "dialing.time_zone=UTC",
        "dialing.calling_hours=[{days=[\"Mon-Sun\"],from=\"00:00\",to=\"24:00\"}]",
        &holidays,
    ]);
    let alice = server.login("1001");
    let (code, v) = place(&server, &alice, json!({ "number": "030 5550303" }));
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        v["error"],
        "outside the calling hours: customers may be called Mon-Sun 00:00-24:00 (UTC)"
    );
    let refusals = audited_refusals(&server);
    assert!(
        refusals.iter().any(|e| e["target"] == "+49305550303"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("outside calling hours")),
        "{refusals:?}"
    );
}
