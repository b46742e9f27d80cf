//! Showroom appointments and their handover over the REST API with a real database file:
//! an agent books a visit for their lead (bad times, texts and other agents' leads refused);
//! it is listed for them and their supervisor, not for another group's; a no-show puts the
//! lead back on the agent's work list; a shown visit is handed over to the direct-sales
//! person who received the customer (the lead is `visited` and off the agent's work list);
//! each outcome is recorded once; the timeline has every step; the handover log report lists
//! the visits as JSON and CSV.

mod common;

use common::{Server, call, now_ms, worklist_ids};
use serde_json::{Value, json};

const HOUR_MS: i64 = 3_600_000;

fn timeline_kinds(server: &Server, token: &str, lead: i64) -> Vec<String> {
    let (code, v) = call(server, "GET", &format!("/api/leads/{lead}"), token, None);
    assert_eq!(code, 200, "{v}");
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_visit_is_booked_then_missed_or_handed_over_once() {
    let server = Server::start(&[]);
    let alice = server.login("1001");
    let bob = server.login("1002");
    let sam = server.login("9001");
    let sue = server.login("9002"); // the service group's supervisor

    let (code, v) = call(
        &server,
        "POST",
        "/api/leads",
        &sam,
        Some(json!({
            "name": "Clara Vogel", "phones": ["030 5550401"], "grade": "H", "source": "web", "owner": "1001"
        })),
    );
    assert_eq!(code, 201, "{v}");
    let lead = v["id"].as_i64().unwrap();
    let (code, v) = call(
        &server,
        "POST",
        "/api/leads",
        &sam,
        Some(json!({
            "name": "Bob's lead", "phones": ["030 5550402"], "owner": "1002"
        })),
    );
    assert_eq!(code, 201, "{v}");
    let bobs = v["id"].as_i64().unwrap();
    // Reached: the next follow-up is weeks away, so the lead is off the work list.
    let (code, v) = call(
        &server,
        "POST",
        &format!("/api/leads/{lead}/contacts"),
        &alice,
        Some(json!({
            "result": "appointment", "next_follow_up_ms": now_ms() + 30 * 24 * HOUR_MS
        })),
    );
    assert_eq!(code, 200, "{v}");
    assert!(!worklist_ids(&server, &alice).contains(&lead));

    let book = |token: &str, lead: i64, body: Value| {
        call(
            &server,
            "POST",
            &format!("/api/leads/{lead}/appointments"),
            token,
            Some(body),
        )
    };
    let at = now_ms() + 2 * HOUR_MS;
    assert_eq!(
        book(&alice, lead, json!({ "at_ms": now_ms() - 2 * HOUR_MS })).0,
        400
    );
    assert_eq!(
        book(
            &alice,
            lead,
            json!({ "at_ms": at, "place": "x".repeat(501) })
        )
        .0,
        400
    );
    assert_eq!(book(&alice, lead, json!({ "when": at })).0, 400);
    assert_eq!(
        book(&alice, bobs, json!({ "at_ms": at })).0,
        404,
        "not Alice's lead"
    );
    assert_eq!(book(&alice, 999_999, json!({ "at_ms": at })).0, 404);
    let (code, first) = book(
        &alice,
        lead,
        json!({ "at_ms": at, "place": "Showroom Mitte", "note": "test drive" }),
    );
    assert_eq!(code, 201, "{first}");
    assert_eq!(
        (
            first["state"].as_str(),
            first["booked_by"].as_str(),
            first["lead_name"].as_str()
        ),
        (Some("booked"), Some("1001"), Some("Clara Vogel"))
    );
    let first = first["id"].as_i64().unwrap();

    // Listed for Alice and her supervisor; not for the other group's supervisor or Bob.
    let listed = |token: &str| {
        let (code, v) = call(&server, "GET", "/api/appointments", token, None);
        assert_eq!(code, 200, "{v}");
        v["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&alice), vec![first]);
    assert_eq!(listed(&sam), vec![first]);
    assert!(listed(&sue).is_empty());
    assert!(listed(&bob).is_empty());
    assert_eq!(
        call(&server, "GET", "/api/appointments?state=lost", &alice, None).0,
        400
    );

    // Bob cannot record it; a shown visit needs its receiver; Alice records a no-show.
    let outcome = |token: &str, id: i64, body: Value| {
        call(
            &server,
            "POST",
            &format!("/api/appointments/{id}/outcome"),
            token,
            Some(body),
        )
    };
    assert_eq!(outcome(&bob, first, json!({ "outcome": "no_show" })).0, 404);
    let (code, v) = outcome(&alice, first, json!({ "outcome": "shown" }));
    assert_eq!(
        (code, v["error"].as_str()),
        (
            400,
            Some("a shown visit needs the receiver: who took the customer over")
        )
    );
    assert_eq!(outcome(&alice, first, json!({ "outcome": "maybe" })).0, 400);
    let (code, v) = outcome(&alice, first, json!({ "outcome": "no_show" }));
    assert_eq!((code, v["state"].as_str()), (200, Some("no_show")), "{v}");
    let (code, v) = outcome(
        &sam,
        first,
        json!({ "outcome": "shown", "receiver": "Max" }),
    );
    assert_eq!(
        (code, v["error"].as_str()),
        (
            409,
            Some(format!("appointment {first} is no_show already").as_str())
        )
    );
    // The no-show is back on Alice's work list, due now.
    assert!(worklist_ids(&server, &alice).contains(&lead));

    // A second visit: the customer comes and the supervisor records the handover.
    let (code, second) = book(
        &alice,
        lead,
        json!({ "at_ms": at + HOUR_MS, "place": "Showroom Mitte" }),
    );
    assert_eq!(code, 201, "{second}");
    let second = second["id"].as_i64().unwrap();
    let (_, v) = call(&server, "GET", &format!("/api/leads/{lead}"), &alice, None);
    assert_eq!(v["status"], "appointment", "{v}");
    let (code, v) = outcome(
        &sam,
        second,
        json!({ "outcome": "shown", "receiver": "Max Verkauf" }),
    );
    assert_eq!(
        (code, v["state"].as_str(), v["receiver"].as_str()),
        (200, Some("shown"), Some("Max Verkauf")),
        "{v}"
    );
    let (_, v) = call(&server, "GET", &format!("/api/leads/{lead}"), &alice, None);
    assert_eq!(v["status"], "visited", "{v}");
    assert_eq!(
        v["next_follow_up_ms"],
        Value::Null,
        "the follow-up is the receiver's now: {v}"
    );
    assert!(!worklist_ids(&server, &alice).contains(&lead));
    let kinds = timeline_kinds(&server, &alice, lead);
    for k in ["appointment", "no_show", "handover"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "{k} on the timeline: {kinds:?}"
        );
    }

    // The handover log: both visits, for the days they fall on.
    let day = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .strftime("%Y-%m-%d")
            .to_string()
    };
    let range = format!("from={}&to={}", day(now_ms()), day(at + 2 * HOUR_MS));
    let (code, v) = call(
        &server,
        "GET",
        &format!("/api/reports/handovers?{range}"),
        &sam,
        None,
    );
    assert_eq!(code, 200, "{v}");
    let rows = v["rows"].as_array().unwrap();
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["state"].as_str().unwrap(),
                r["receiver"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![("no_show", ""), ("shown", "Max Verkauf")],
        "{v}"
    );
    let (code, csv) = server.http(
        "GET",
        &format!("/api/reports/handovers?{range}&format=csv"),
        Some(&sam),
        None,
    );
    assert_eq!(code, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2, "{csv}");
    assert_eq!(&records[1][2], "Clara Vogel");
    assert_eq!(&records[1][8], "Max Verkauf");
    // Another group's supervisor's log does not have them; agents get no report.
    let (_, v) = call(
        &server,
        "GET",
        &format!("/api/reports/handovers?{range}"),
        &sue,
        None,
    );
    assert_eq!(v["rows"], json!([]), "{v}");
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/api/reports/handovers?{range}"),
            &alice,
            None
        )
        .0,
        403
    );
}
