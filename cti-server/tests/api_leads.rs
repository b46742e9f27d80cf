//! The lead API against a running server and its real database file, as agents and
//! supervisors use it: a web lead created by an agent (phones in any spelling, stored E.164),
//! the duplicate refused, the 24-hour first contact on the agent's work list, the contact
//! recorded with the next follow-up from the grade's cadence, a grade change, an agreed date,
//! a handover by the supervisor, and who may see what.

mod common;

use common::{Server, call, now_ms};
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

fn near(actual: &Value, expected: i64) -> bool {
    actual
        .as_i64()
        .is_some_and(|a| (a - expected).abs() < 60_000)
}

#[test]
fn an_agent_works_a_web_lead_from_creation_to_follow_up() {
    let server = Server::start(&[]);
    let alice = server.login("1001");
    let bob = server.login("1002");
    let sam = server.login("9001");
    let sue = server.login("9002");

    // Bad input gets a clear 400 and creates nothing.
    for (body, what) in [
        (json!({"name": "", "phones": ["030 555123"]}), "name"),
        (json!({"name": "X", "phones": ["12"]}), "phone"),
        (json!({"name": "X"}), "phone or an e-mail"),
        (json!({"name": "X", "email": "nope"}), "e-mail"),
        (
            json!({"name": "X", "phones": ["030 555123"], "grade": "Z"}),
            "grade",
        ),
        (
            json!({"name": "X", "phones": ["030 555123"], "source": "tv"}),
            "source",
        ),
        (
            json!({"name": "X", "phones": ["030 555123"], "custom": [1]}),
            "custom",
        ),
    ] {
        let (code, v) = call(&server, "POST", "/api/leads", &alice, Some(body));
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(what), "{v}");
    }
    let (code, _) = call(
        &server,
        "POST",
        "/api/leads",
        &alice,
        Some(json!({"name": "X", "phones": ["030 555123"], "owner": "1002"})),
    );
    assert_eq!(code, 403, "agents create leads for themselves");

    // A web lead: hers, due for a first contact within 24 hours, phones in E.164.
    let created = now_ms();
    let (code, v) = call(
        &server,
        "POST",
        "/api/leads",
        &alice,
        Some(json!({
            "name": "Lena Vogt",
            "phones": ["030 555123", "+49 (170) 555-1234"],
            "email": "lena@example.com",
            "source": "web",
            "grade": "H",
            "product": "Model S",
            "custom": {"trade_in": true}
        })),
    );
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_i64().unwrap();
    let (code, lead) = call(&server, "GET", &format!("/api/leads/{id}"), &alice, None);
    assert_eq!(code, 200, "{lead}");
    assert_eq!(lead["owner_agent"], "1001");
    assert_eq!(lead["status"], "new");
    assert_eq!(lead["custom"]["trade_in"], true);
    assert!(
        near(&lead["first_contact_due_ms"], created + DAY_MS),
        "{lead}"
    );
    assert!(
        near(&lead["next_follow_up_ms"], created + 3 * DAY_MS),
        "{lead}"
    );
    let phones: Vec<&str> = lead["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones, ["+4930555123", "+491705551234"]);
    assert_eq!(lead["timeline"][0]["kind"], "created");

    // The same number again, spelled otherwise: refused, naming the lead.
    let (code, v) = call(
        &server,
        "POST",
        "/api/leads",
        &bob,
        Some(json!({"name": "Lena V.", "phones": ["0049 30 555 123"]})),
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["lead"], id);

    // Who sees it: its owner and the sales supervisor, not a colleague or service's.
    assert_eq!(
        call(&server, "GET", &format!("/api/leads/{id}"), &bob, None).0,
        404
    );
    assert_eq!(
        call(&server, "GET", &format!("/api/leads/{id}"), &sue, None).0,
        404
    );
    assert_eq!(
        call(&server, "GET", &format!("/api/leads/{id}"), &sam, None).0,
        200
    );
    let (_, found) = call(&server, "GET", "/api/leads?q=555123", &sam, None);
    assert!(
        found["leads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == id)
    );
    let (_, found) = call(&server, "GET", "/api/leads?q=555123", &bob, None);
    assert!(
        !found["leads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == id)
    );

    // Her work list: the first contact, before anything else.
    let (code, list) = call(&server, "GET", "/api/worklist", &alice, None);
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"][0]["id"], id, "{list}");
    assert_eq!(list["items"][0]["why"], "first_contact");
    assert_eq!(
        call(&server, "GET", "/api/worklist?agent=1001", &bob, None).0,
        403
    );
    assert_eq!(
        call(&server, "GET", "/api/worklist?agent=1001", &sam, None).0,
        200
    );

    // She calls: reached. First contact met, status contacted, next follow-up in 3 days (H).
    let (code, lead) = call(
        &server,
        "POST",
        &format!("/api/leads/{id}/contacts"),
        &alice,
        Some(json!({"result": "reached", "note": "wants a test drive"})),
    );
    assert_eq!(code, 200, "{lead}");
    assert_eq!(lead["status"], "contacted");
    assert!(lead["first_contact_at_ms"].as_i64().is_some());
    assert!(
        near(&lead["next_follow_up_ms"], now_ms() + 3 * DAY_MS),
        "{lead}"
    );
    let (_, list) = call(&server, "GET", "/api/worklist", &alice, None);
    assert!(
        !list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == id),
        "not due for 3 days: {list}"
    );

    // Downgraded to A: a follow-up in 7 days, the change on the timeline.
    let (code, lead) = call(
        &server,
        "PATCH",
        &format!("/api/leads/{id}"),
        &alice,
        Some(json!({"grade": "A"})),
    );
    assert_eq!(code, 200, "{lead}");
    assert!(
        near(&lead["next_follow_up_ms"], now_ms() + 7 * DAY_MS),
        "{lead}"
    );
    let kinds: Vec<&str> = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "contact", "grade", "next_follow_up_ms"]);
    let grade = &lead["timeline"][2]["detail"];
    assert_eq!(
        (grade["from"].as_str(), grade["to"].as_str()),
        (Some("H"), Some("A"))
    );

    // The customer asked to be called back yesterday's date (a missed agreement): overdue.
    let (code, _) = call(
        &server,
        "POST",
        &format!("/api/leads/{id}/contacts"),
        &alice,
        Some(json!({"result": "callback", "next_follow_up_ms": now_ms() - DAY_MS})),
    );
    assert_eq!(code, 200);
    let (_, list) = call(&server, "GET", "/api/worklist", &alice, None);
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(item["why"], "overdue");

    // Handover: not hers to give; the supervisor gives it to Bob, and it moves lists.
    let handover = json!({"owner": "1002"});
    let path = format!("/api/leads/{id}");
    assert_eq!(
        call(&server, "PATCH", &path, &alice, Some(handover.clone())).0,
        403
    );
    assert_eq!(
        call(
            &server,
            "PATCH",
            &path,
            &sam,
            Some(json!({"owner": "2001"}))
        )
        .0,
        400,
        "not one of the sales supervisor's agents"
    );
    let (code, lead) = call(&server, "PATCH", &path, &sam, Some(handover));
    assert_eq!(code, 200, "{lead}");
    assert_eq!(lead["owner_agent"], "1002");
    assert_eq!(call(&server, "GET", &path, &alice, None).0, 404);
    let (_, list) = call(&server, "GET", "/api/worklist", &bob, None);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == id)
    );

    // Notes go on the timeline; an empty one is refused.
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("/api/leads/{id}/notes"),
            &bob,
            Some(json!({"text": " "}))
        )
        .0,
        400
    );
    let (code, lead) = call(
        &server,
        "POST",
        &format!("/api/leads/{id}/notes"),
        &bob,
        Some(json!({"text": "prefers mornings"})),
    );
    assert_eq!(code, 200);
    let last = lead["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["actor"].as_str()),
        (Some("note"), Some("1002"))
    );
}

#[test]
fn a_supervisor_imports_a_csv_with_a_column_mapping_and_exports_it_again() {
    let server = Server::start(&[]);
    let sam = server.login("9001");
    let alice = server.login("1001");
    let count = |t: &str| {
        let (_, v) = call(&server, "GET", "/api/leads", t, None);
        v["leads"].as_array().unwrap().len()
    };
    let before = count(&sam);
    let file = "Full name;Mobile;Phone 2;E-Mail;Grade;Owner\n\
                Max Muster;030 7770001;;max@example.com;H;1001\n\
                Erika Beispiel;0171 8880002;030 7770001;;A;1002\n\
                ;030 7770003;;;B;1001\n\
                Bad Phone;12;;;A;1001\n\
                Other Group;030 7770005;;;A;2001\n\
                \"Kurz; Karl\";030 777 0006;;;C;\n";
    let columns = json!({"name": "Full name", "phones": ["Mobile", "Phone 2"], "email": "E-Mail"});
    let body = json!({"csv": file, "columns": columns, "duplicates": "skip", "source": "event"});
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/leads/import",
            &alice,
            Some(body.clone())
        )
        .0,
        403,
        "agents do not import"
    );
    // A mapping naming a column the file lacks: 400, nothing imported.
    let wrong = json!({"csv": file, "columns": {"name": "Name"}});
    let (code, v) = call(&server, "POST", "/api/leads/import", &sam, Some(wrong));
    assert_eq!(code, 400, "{v}");
    assert_eq!(count(&sam), before);

    let (code, report) = call(&server, "POST", "/api/leads/import", &sam, Some(body));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(
        report["skipped"][0]["line"], 3,
        "the same phone earlier in the file"
    );
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rejected.len(), 3, "{report}");
    assert_eq!(rejected[0].0, 4);
    assert!(rejected[0].1.contains("name"));
    assert_eq!(rejected[1].0, 5);
    assert!(rejected[1].1.contains("phone"));
    assert_eq!(rejected[2].0, 6);
    assert!(rejected[2].1.contains("owner"));
    let ids: Vec<i64> = report["lead_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_i64().unwrap())
        .collect();
    let (_, max) = call(
        &server,
        "GET",
        &format!("/api/leads/{}", ids[0]),
        &sam,
        None,
    );
    assert_eq!(max["name"], "Max Muster");
    assert_eq!(max["source"], "event");
    assert_eq!(max["owner_agent"], "1001");
    assert_eq!(max["phones"][0]["phone"], "+49307770001");
    let (_, karl) = call(
        &server,
        "GET",
        &format!("/api/leads/{}", ids[1]),
        &sam,
        None,
    );
    assert_eq!(
        karl["name"], "Kurz; Karl",
        "quoted fields keep their delimiter"
    );

    // Merge: the known phone with a new address fills the gap, on the timeline.
    let again = "name,phone,email\nMax M.,+49 30 7770001,max.m@example.com\n";
    let (code, report) = call(
        &server,
        "POST",
        "/api/leads/import",
        &sam,
        Some(json!({"csv": again, "duplicates": "merge"})),
    );
    assert_eq!(code, 200, "{report}");
    assert_eq!(
        (report["created"].as_u64(), report["merged"].as_u64()),
        (Some(0), Some(1))
    );
    let (_, max) = call(
        &server,
        "GET",
        &format!("/api/leads/{}", ids[0]),
        &sam,
        None,
    );
    assert_eq!(max["email"], "max@example.com", "a known address stays");
    assert_eq!(
        max["timeline"].as_array().unwrap().last().unwrap()["kind"],
        "merged"
    );

    // Export: what the supervisor sees, readable by a CSV reader.
    let (code, text) = server.http("GET", "/api/leads/export.csv", Some(&sam), None);
    assert_eq!(code, 200);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(&r.headers().unwrap()[1], "name");
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let max_row = rows
        .iter()
        .find(|r| &r[1] == "Max Muster")
        .expect("Max exported");
    assert_eq!(&max_row[4], "+49307770001");
    assert_eq!(&max_row[8], "1001");
    assert!(rows.iter().any(|r| &r[1] == "Kurz; Karl"));
    // And as XLSX, the same rows (read back with calamine).
    let cells = common::xlsx_cells(&server, "/api/leads/export.xlsx", &sam);
    assert_eq!(cells[0][1], "name");
    assert_eq!(cells.len(), rows.len() + 1, "a row per lead");
    let max = cells
        .iter()
        .find(|r| r[1] == "Max Muster")
        .expect("Max in the workbook");
    assert_eq!((max[4].as_str(), max[8].as_str()), ("+49307770001", "1001"));
}

/// An XLSX workbook (made with rust_xlsxwriter, as a spreadsheet program would save it)
/// imported with a column mapping: a phone typed as a number keeps its digits, a row without
/// a name is rejected by its row number, a duplicate is skipped; a file that is not base64
/// or not a workbook is refused and nothing is imported.
#[test]
fn a_supervisor_imports_an_xlsx_workbook() {
    use base64::Engine;
    let server = Server::start(&["storage.seed_leads=\"\""]);
    let sam = server.login("9001");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["Name", "Mobile", "Company", "Grade", "Owner"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "Ida Kunz").unwrap();
    sheet.write_number(1, 1, 1_705_550_701.0).unwrap(); // 0170 5550701 typed as a number
    sheet.write_string(1, 2, "Kunz GmbH").unwrap();
    sheet.write_string(1, 3, "A").unwrap();
    sheet.write_string(1, 4, "1001").unwrap();
    sheet.write_string(2, 1, "030 5550702").unwrap(); // no name
    sheet.write_string(3, 0, "Ida again").unwrap();
    sheet.write_string(3, 1, "+49 170 5550701").unwrap();
    sheet.write_string(4, 0, "Jan Ott").unwrap();
    sheet.write_string(4, 1, "030 5550703").unwrap();
    let xlsx = base64::engine::general_purpose::STANDARD.encode(book.save_to_buffer().unwrap());
    let count = || {
        let (_, v) = call(&server, "GET", "/api/leads", &sam, None);
        v["leads"].as_array().unwrap().len()
    };

    for (bad, why) in [
        ("not base64!", "xlsx: not base64"),
        ("UEsDBAoAAAAAAA==", "xlsx: not an XLSX workbook"),
    ] {
        let (code, v) = call(
            &server,
            "POST",
            "/api/leads/import",
            &sam,
            Some(json!({"xlsx": bad})),
        );
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(why), "{v}");
    }
    let (code, v) = call(
        &server,
        "POST",
        "/api/leads/import",
        &sam,
        Some(json!({"csv": "name\nx\n", "xlsx": xlsx})),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(count(), 0, "nothing imported");

    let body = json!({"xlsx": xlsx, "columns": {"phones": "Mobile"}, "source": "event"});
    let (code, report) = call(&server, "POST", "/api/leads/import", &sam, Some(body));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(
        report["rejected"][0]["line"], 3,
        "the row without a name: {report}"
    );
    assert_eq!(
        report["skipped"][0]["line"], 4,
        "Ida's number again: {report}"
    );
    let ida = report["lead_ids"][0].as_i64().unwrap();
    let (_, lead) = call(&server, "GET", &format!("/api/leads/{ida}"), &sam, None);
    assert_eq!(lead["name"], "Ida Kunz");
    assert_eq!(lead["company"], "Kunz GmbH");
    assert_eq!(lead["grade"], "A");
    assert_eq!(lead["owner_agent"], "1001");
    assert_eq!(lead["phones"][0]["phone"], "+491705550701", "{lead}");
    assert_eq!(count(), 2);
}
