//! Hot-lead reporting over the REST API with a real database file (DOMAIN "Hot-lead
//! reporting"): a telemarketer reports their lead with the five criteria (a report missing
//! one is refused, naming it; other agents' leads are hidden); the lead is `hot` and off the
//! work list; the sales manager of the reporter's group hears of it on the CTI socket and
//! rejects it with a reason (another group's supervisor and the reporter may not decide; a
//! rejection without reason is refused); the lead is back on the telemarketer's work list
//! with the reason on its timeline, and they hear of it too. A second report nobody answers
//! is accepted by silence once its working days are over, and can no longer be rejected.
//! The hot-lead log report lists both, as JSON and XLSX.

mod common;

use std::time::Duration;

use common::{Server, call, json_of, now_ms, worklist_ids, xlsx_cells};
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

fn lead(server: &Server, token: &str, id: i64) -> Value {
    let (code, v) = call(server, "GET", &format!("/api/leads/{id}"), token, None);
    assert_eq!(code, 200, "{v}");
    v
}

fn criteria() -> Value {
    json!({
        "timeline": "decision before the end of January",
        "selection_team": "CFO and the head of accounting",
        "owner": "Ms Weber, CFO",
        "go_live": "2027-04-01",
        "fit": "payroll and tax filing for 40 staff",
    })
}

/// A CTI socket of a user, reading events until one of `kind` comes (10 s at most).
struct Events(tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>);

impl Events {
    fn open(server: &Server, token: &str) -> Events {
        let url = format!("ws://{}/api/events?token={token}", server.http);
        let (mut ws, _) = tungstenite::connect(url).expect("the events WebSocket opens");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        Events(ws)
    }

    fn next(&mut self, kind: &str) -> Value {
        loop {
            if let tungstenite::Message::Text(t) = self.0.read().expect("an event in time") {
                let v = json_of(t.as_str());
                if v["type"] == kind {
                    return v;
                }
            }
        }
    }
}

#[test]
fn a_hot_lead_is_reported_rejected_with_a_reason_then_accepted_by_silence() {
    let server = Server::start(&[]);
    let alice = server.login("1001");
    let bob = server.login("1002");
    let sam = server.login("9001"); // supervises sales: Alice's sales manager
    let sue = server.login("9002"); // supervises service
    let ada = server.login("9900");

    let new_lead = |name: &str, phone: &str, owner: &str| {
        let (code, v) = call(
            &server,
            "POST",
            "/api/leads",
            &sam,
            Some(json!({
                "name": name, "phones": [phone], "grade": "A", "source": "web", "owner": owner
            })),
        );
        assert_eq!(code, 201, "{v}");
        v["id"].as_i64().unwrap()
    };
    let weber = new_lead("Kanzlei Weber", "030 5550601", "1001");
    let bobs = new_lead("Bob's lead", "030 5550602", "1002");
    let report = |token: &str, lead: i64, body: Value| {
        call(
            &server,
            "POST",
            &format!("/api/leads/{lead}/hot"),
            token,
            Some(body),
        )
    };

    // All five criteria, or a clear refusal naming the missing ones.
    let mut partial = criteria();
    partial["selection_team"] = json!("  ");
    partial.as_object_mut().unwrap().remove("go_live");
    let (code, v) = report(&alice, weber, json!({ "criteria": partial }));
    assert_eq!(code, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("selection_team (a selection team)") && e.contains("go_live (a go-live date)"),
        "{e}"
    );
    let mut bad_date = criteria();
    bad_date["go_live"] = json!("spring");
    assert_eq!(
        report(&alice, weber, json!({ "criteria": bad_date })).0,
        400
    );
    assert_eq!(report(&alice, weber, json!({ "hot": true })).0, 400);
    assert_eq!(
        report(&alice, bobs, json!({ "criteria": criteria() })).0,
        404,
        "not Alice's lead"
    );
    assert_eq!(
        report(&alice, 999_999, json!({ "criteria": criteria() })).0,
        404
    );

    // Reported: her manager hears of it at once.
    let mut sams_events = Events::open(&server, &sam);
    let mut alices_events = Events::open(&server, &alice);
    let before = now_ms();
    let (code, first) = report(
        &alice,
        weber,
        json!({ "criteria": criteria(), "note": "demo booked for Thursday" }),
    );
    assert_eq!(code, 201, "{first}");
    let id = first["id"].as_i64().unwrap();
    assert_eq!(first["state"], "pending");
    assert_eq!(first["criteria"]["owner"], "Ms Weber, CFO");
    let review_by = first["review_by_ms"].as_i64().unwrap();
    // Five working days: at least a week less a weekend, at most two weeks with holidays.
    assert!(
        review_by > before + 5 * DAY_MS && review_by <= before + 14 * DAY_MS,
        "review by {review_by}, reported {before}"
    );
    let e = sams_events.next("hot_lead");
    assert_eq!(
        (e["id"].as_i64(), e["state"].as_str()),
        (Some(id), Some("pending"))
    );
    let l = lead(&server, &alice, weber);
    assert_eq!(l["status"], "hot");
    assert!(
        !worklist_ids(&server, &alice).contains(&weber),
        "with sales now"
    );
    let (code, v) = report(&alice, weber, json!({ "criteria": criteria() }));
    assert_eq!(code, 409, "one report at a time: {v}");

    // Who sees the pending reports.
    let pending = |token: &str| -> Vec<i64> {
        let (code, v) = call(&server, "GET", "/api/hot-leads?state=pending", token, None);
        assert_eq!(code, 200, "{v}");
        v["hot_leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(pending(&sam), vec![id]);
    assert_eq!(pending(&alice), vec![id]);
    assert_eq!(pending(&ada), vec![id]);
    assert!(pending(&sue).is_empty(), "another group's");
    assert!(pending(&bob).is_empty(), "another agent's");
    assert_eq!(
        call(&server, "GET", "/api/hot-leads?state=hot", &sam, None).0,
        400
    );

    // The decision: the reporter's sales manager, with a reason to reject.
    let decide = |token: &str, body: Value| {
        call(
            &server,
            "POST",
            &format!("/api/hot-leads/{id}/decision"),
            token,
            Some(body),
        )
    };
    assert_eq!(
        decide(&alice, json!({ "decision": "accept" })).0,
        403,
        "not her own"
    );
    assert_eq!(
        decide(&sue, json!({ "decision": "accept" })).0,
        404,
        "not her group's"
    );
    assert_eq!(decide(&sam, json!({ "decision": "maybe" })).0, 400);
    let (code, v) = decide(&sam, json!({ "decision": "reject" }));
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("reason"), "{v}");
    let (code, rejected) = decide(
        &sam,
        json!({ "decision": "reject", "reason": "no budget before Q3" }),
    );
    assert_eq!(code, 200, "{rejected}");
    assert_eq!(
        (rejected["state"].as_str(), rejected["decided_by"].as_str()),
        (Some("rejected"), Some("9001"))
    );
    let e = alices_events.next("hot_lead");
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("rejected"), Some("no budget before Q3"))
    );
    let (code, v) = decide(&ada, json!({ "decision": "accept" }));
    assert_eq!(code, 409, "decided once: {v}");
    // Back with the telemarketer, due now, the reason on the timeline.
    let l = lead(&server, &alice, weber);
    assert_eq!(l["status"], "contacted");
    assert!(worklist_ids(&server, &alice).contains(&weber));
    let timeline: Vec<&Value> = l["timeline"].as_array().unwrap().iter().collect();
    let kinds: Vec<&str> = timeline
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.ends_with(&["hot_reported", "hot_rejected"]),
        "{kinds:?}"
    );
    assert_eq!(
        timeline.last().unwrap()["detail"]["reason"],
        "no budget before Q3"
    );

    // The budget came early: reported again; nobody answers within the working days.
    let (code, second) = report(&alice, weber, json!({ "criteria": criteria() }));
    assert_eq!(code, 201, "{second}");
    let second_id = second["id"].as_i64().unwrap();
    let past = now_ms() - 60_000;
    assert_eq!(
        server.execute(&format!(
            "UPDATE hot_leads SET review_by_ms = {past} WHERE id = {second_id}"
        )),
        1,
        "as if the working days had passed"
    );
    let (code, v) = call(&server, "GET", "/api/hot-leads", &sam, None);
    assert_eq!(code, 200, "{v}");
    let silent = v["hot_leads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"].as_i64() == Some(second_id))
        .unwrap()
        .clone();
    assert_eq!(silent["state"], "accepted");
    assert_eq!(silent["decided_by"], Value::Null);
    assert_eq!(silent["decided_at_ms"].as_i64(), Some(past));
    let (code, v) = call(
        &server,
        "POST",
        &format!("/api/hot-leads/{second_id}/decision"),
        &sam,
        Some(json!({ "decision": "reject", "reason": "too late" })),
    );
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("nobody answered in time"),
        "{v}"
    );
    let l = lead(&server, &alice, weber);
    assert_eq!(l["status"], "hot");
    // On the timeline as of the deadline (moved back here, so before the report itself).
    assert!(
        l["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "hot_accepted"
                && e["detail"]["by"] == "silence"
                && e["actor"] == "system"),
        "{l}"
    );

    // The log: both reports, as JSON and XLSX; agents may not read reports.
    let (code, v) = call(&server, "GET", "/api/reports/hot_leads", &sam, None);
    assert_eq!(code, 200, "{v}");
    let columns: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let col = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["state"], "rejected");
    assert_eq!(rows[0]["reason"], "no budget before Q3");
    assert_eq!(rows[0]["selection_team"], "CFO and the head of accounting");
    assert_eq!(rows[1]["state"], "accepted");
    assert_eq!(rows[1]["decided_by"], "(silence)");
    let cells = xlsx_cells(&server, "/api/reports/hot_leads?format=xlsx", &sam);
    assert_eq!(cells.len(), 3, "{cells:?}");
    assert_eq!(cells[0][col("go_live")], "go_live");
    assert_eq!(cells[1][col("go_live")], "2027-04-01");
    assert_eq!(cells[2][col("decided_by")], "(silence)");
    assert_eq!(
        call(&server, "GET", "/api/reports/hot_leads", &alice, None).0,
        403
    );
    let (_, v) = call(&server, "GET", "/api/reports/hot_leads", &sue, None);
    assert_eq!(v["rows"].as_array().unwrap().len(), 0, "another group's");
}
