//! The lead reports over the REST API with a real database file: the business funnel by
//! agent, the lead-source conversion, the 24-hour follow-up compliance and the outbound
//! report, each for the supervisor's own agents (an admin sees every agent and unowned
//! leads), as JSON, CSV and XLSX (read back with calamine); agents get none.

mod common;

use common::{Server, json_of};
use serde_json::{Value, json};

fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

fn post(server: &Server, token: &str, path: &str, body: Value) -> Value {
    let (code, text) = server.http("POST", path, Some(token), Some(&body.to_string()));
    assert!((200..300).contains(&code), "{path}: {code} {text}");
    json_of(&text)
}

fn report(server: &Server, token: &str, name: &str) -> Vec<Value> {
    let d = today();
    let (code, text) = server.http(
        "GET",
        &format!("/api/reports/{name}?from={d}&to={d}"),
        Some(token),
        None,
    );
    assert_eq!(code, 200, "{name}: {text}");
    json_of(&text)["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_funnel_sources_and_follow_up_reports_count_each_supervisors_leads() {
    // No demo leads: the figures are this test's leads alone.
    let server = Server::start(&["storage.seed_leads=\"\""]);
    let sam = server.login("9001"); // sales: 1001, 1002
    let admin = server.login("9900");
    let lead = |name: &str, phone: &str, owner: &str, source: &str, grade: &str| {
        let body = json!({ "name": name, "phones": [phone], "owner": owner, "source": source, "grade": grade });
        post(&server, &admin, "/api/leads", body)["id"]
            .as_i64()
            .unwrap()
    };
    let anna = lead("Anna", "030 5550601", "1001", "web", "H");
    let _ben = lead("Ben", "030 5550602", "1002", "hq", "B");
    let _cleo = lead("Cleo", "030 5550603", "2001", "web", "A");
    // Anna: reached in time, visited the showroom, bought.
    let alice = server.login("1001");
    post(
        &server,
        &alice,
        &format!("/api/leads/{anna}/contacts"),
        json!({ "result": "reached" }),
    );
    let at = jiff::Timestamp::now().as_millisecond() + 3_600_000;
    let visit = post(
        &server,
        &alice,
        &format!("/api/leads/{anna}/appointments"),
        json!({ "at_ms": at }),
    );
    post(
        &server,
        &sam,
        &format!("/api/appointments/{}/outcome", visit["id"]),
        json!({ "outcome": "shown", "receiver": "Max" }),
    );
    let (code, text) = server.http(
        "PATCH",
        &format!("/api/leads/{anna}"),
        Some(&sam),
        Some(r#"{"status":"won"}"#),
    );
    assert_eq!(code, 200, "{text}");

    // The funnel by agent: the supervisor's two agents, not the service agent.
    let rows = report(&server, &sam, "funnel");
    let agents: Vec<&str> = rows.iter().map(|r| r["agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["1001", "1002"], "{rows:?}");
    let a = &rows[0];
    let steps: Vec<i64> = [
        "leads",
        "contacted",
        "hot_h_or_a",
        "appointments",
        "visits",
        "deals",
    ]
    .iter()
    .map(|k| a[*k].as_i64().unwrap())
    .collect();
    assert_eq!(steps, [1, 1, 1, 1, 1, 1], "{a}");
    assert_eq!(a["deal_pct"], 100.0, "{a}");
    assert_eq!(rows[1]["contacted"], 0, "{rows:?}");
    assert_eq!(
        report(&server, &admin, "funnel").len(),
        3,
        "the admin sees 2001's too"
    );

    // Lead sources: web and hq among the supervisor's leads.
    let rows = report(&server, &sam, "sources");
    let sources: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r["source"].as_str().unwrap(), r["leads"].as_i64().unwrap()))
        .collect();
    assert_eq!(sources, [("hq", 1), ("web", 1)]);
    let rows = report(&server, &admin, "sources");
    let web = rows.iter().find(|r| r["source"] == "web").unwrap();
    assert_eq!(
        (web["leads"].as_i64(), web["deals"].as_i64()),
        (Some(2), Some(1))
    );

    // Follow-up compliance: both leads are under the 24-hour rule; Anna's is met, Ben's
    // deadline is still ahead.
    let rows = report(&server, &sam, "follow_up");
    let all = rows.iter().find(|r| r["by"] == "all").expect("a total row");
    assert_eq!(
        (
            all["first_contacts_due"].as_i64(),
            all["in_24h"].as_i64(),
            all["pending"].as_i64()
        ),
        (Some(2), Some(1), Some(1)),
        "{rows:?}"
    );
    assert_eq!(all["in_24h_pct"], 100.0, "{all}");
    let by_agent: Vec<&str> = rows
        .iter()
        .filter(|r| r["by"] == "agent")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(by_agent, ["1001", "1002"]);
    assert!(
        rows.iter()
            .any(|r| r["by"] == "source" && r["name"] == "hq")
    );

    // No calls placed: an empty outbound report, with its columns.
    let d = today();
    let (code, text) = server.http(
        "GET",
        &format!("/api/reports/outbound?from={d}&to={d}"),
        Some(&sam),
        None,
    );
    assert_eq!(code, 200, "{text}");
    let v = json_of(&text);
    assert_eq!(v["rows"], json!([]));
    assert_eq!(v["columns"][1], "calls");

    // CSV and XLSX downloads of the same figures.
    let (code, csv) = server.http(
        "GET",
        &format!("/api/reports/funnel?from={d}&to={d}&format=csv"),
        Some(&sam),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        csv.starts_with("month,agent,leads,contacted,hot_h_or_a,appointments,visits,deals"),
        "{csv}"
    );
    let cells = common::xlsx_cells(
        &server,
        &format!("/api/reports/follow_up?from={d}&to={d}&format=xlsx"),
        &sam,
    );
    assert_eq!(cells[0][..3], ["by", "name", "first_contacts_due"]);
    assert!(
        cells.iter().any(|r| r[0] == "all" && r[2] == "2"),
        "{cells:?}"
    );

    // Agents get no reports.
    let (code, _) = server.http(
        "GET",
        &format!("/api/reports/funnel?from={d}&to={d}"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 403);
}
