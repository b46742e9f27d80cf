//! Preview campaigns over the REST API with a real database file (no console phone here;
//! the calls themselves are in `browser_campaign.rs`): only a group's supervisor or an admin
//! makes and runs a campaign, other groups do not see it; leads go in by filter; a paused
//! campaign gives no lead; agents get the due leads in turn, each held for one agent, with
//! the script; a skipped lead comes back after the spacing; calling without a console phone
//! is refused and the lead stays held; a campaign outside its own calling hours or finished
//! gives nothing; preview and progressive verbs are not mixed up.

mod common;

use common::{Server, call};
use serde_json::{Value, json};

fn post(server: &Server, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(server, "POST", path, token, Some(body))
}

#[test]
fn a_preview_campaign_hands_out_its_leads_in_turn_to_its_group() {
    // Customers may be called at any hour here (the campaign's own hours are tested below).
    let server = Server::start(&["dialing.calling_hours=[]"]);
    let sam = server.login("9001");
    let sue = server.login("9002");
    let alice = server.login("1001");
    let bob = server.login("1002");
    let carol = server.login("2001");
    for (name, phone, grade) in [
        ("Kanzlei Weber", "030 5550801", "A"),
        ("Praxis Vogel", "030 5550802", "B"),
        ("Cafe Lind", "030 5550803", "C"),
    ] {
        let (code, v) = post(
            &server,
            "/api/leads",
            &sam,
            json!({ "name": name, "phones": [phone], "grade": grade, "source": "event" }),
        );
        assert_eq!(code, 201, "{v}");
    }

    let campaign = |name: &str, mode: &str, extra: Value| {
        let mut body = json!({
            "name": name, "mode": mode, "skill": "sales", "retry_after_s": 600,
            "script": "Hello, we met at the fair.",
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // Who makes campaigns, and bad bodies.
    assert_eq!(
        post(
            &server,
            "/api/campaigns",
            &alice,
            campaign("Fair", "preview", json!({}))
        )
        .0,
        403
    );
    assert_eq!(
        post(
            &server,
            "/api/campaigns",
            &sue,
            campaign("Fair", "preview", json!({}))
        )
        .0,
        403
    );
    assert_eq!(
        post(
            &server,
            "/api/campaigns",
            &sam,
            campaign("Fair", "predictive", json!({}))
        )
        .0,
        400
    );
    assert_eq!(
        post(
            &server,
            "/api/campaigns",
            &sam,
            campaign("Fair", "preview", json!({ "skill": "golf" }))
        )
        .0,
        400
    );
    assert_eq!(
        post(
            &server,
            "/api/campaigns",
            &sam,
            campaign(
                "Fair",
                "preview",
                json!({ "calling_hours": [{ "days": ["Xyz"], "from": "09:00", "to": "17:00" }] })
            )
        )
        .0,
        400
    );
    let (code, c) = post(
        &server,
        "/api/campaigns",
        &sam,
        campaign("Fair", "preview", json!({})),
    );
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_i64().unwrap();
    assert_eq!(
        post(
            &server,
            "/api/campaigns",
            &sam,
            campaign("Fair", "preview", json!({}))
        )
        .0,
        409
    );

    // Leads by filter: the event leads, grade C left out.
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/leads"),
            &sam,
            json!({})
        )
        .0,
        400
    );
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{id}/leads"),
        &sam,
        json!({ "source": "event" }),
    );
    assert_eq!(
        (code, v["added"].as_i64(), v["already"].as_i64()),
        (200, Some(2), Some(0)),
        "{v}"
    );

    // Who sees it.
    let names = |token: &str| -> Vec<String> {
        let (code, v) = call(&server, "GET", "/api/campaigns", token, None);
        assert_eq!(code, 200, "{v}");
        v["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&alice), ["Fair"]);
    assert!(names(&carol).is_empty(), "the service group's agent");
    assert!(names(&sue).is_empty(), "the service group's supervisor");
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/api/campaigns/{id}"),
            &alice,
            None
        )
        .0,
        403
    );
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/next"),
            &carol,
            json!({})
        )
        .0,
        404
    );

    // Paused: nothing yet.
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{id}/next"),
        &alice,
        json!({}),
    );
    assert_eq!(code, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("paused"), "{v}");
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{id}/state"),
        &alice,
        json!({ "state": "running" }),
    );
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/state"),
            &sam,
            json!({ "state": "go" })
        )
        .0,
        400
    );
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/state"),
            &sam,
            json!({ "state": "running" })
        )
        .0,
        200
    );

    // Alice and Bob get one lead each, with the script.
    let next = |token: &str| {
        post(
            &server,
            &format!("/api/campaigns/{id}/next"),
            token,
            json!({}),
        )
    };
    let (code, a) = next(&alice);
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["script"], "Hello, we met at the fair.");
    assert_eq!(a["lead"]["lead_name"], "Kanzlei Weber");
    assert_eq!(a["lead"]["phone"], "+49305550801");
    let weber = a["lead"]["lead_id"].as_i64().unwrap();
    assert_eq!(
        next(&alice).1["lead"]["lead_id"].as_i64(),
        Some(weber),
        "held for her"
    );
    let (_, b) = next(&bob);
    assert_eq!(b["lead"]["lead_name"], "Praxis Vogel");
    let vogel = b["lead"]["lead_id"].as_i64().unwrap();
    assert_eq!(
        next(&sam).0,
        403,
        "supervisors run campaigns, agents work them"
    );

    // Bob may not call or skip Alice's lead; Alice has no console phone here.
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/leads/{weber}/dial"),
            &bob,
            json!({})
        )
        .0,
        409
    );
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{id}/leads/{weber}/dial"),
        &alice,
        json!({}),
    );
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("phone is not connected"),
        "{v}"
    );
    assert_eq!(
        next(&alice).1["lead"]["lead_id"].as_i64(),
        Some(weber),
        "still hers"
    );
    // Bob skips his: back after the spacing, so nothing is due now.
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{id}/leads/{vogel}/skip"),
        &bob,
        json!({}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/leads/{vogel}/skip"),
            &bob,
            json!({})
        )
        .0,
        409
    );
    assert_eq!(next(&bob).1["lead"], Value::Null);

    // Preview and progressive verbs.
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/join"),
            &alice,
            json!({})
        )
        .0,
        409
    );
    let (code, p) = post(
        &server,
        "/api/campaigns",
        &sam,
        campaign("Fair calls", "progressive", json!({})),
    );
    assert_eq!(code, 201, "{p}");
    let pid = p["id"].as_i64().unwrap();
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{pid}/next"),
            &alice,
            json!({})
        )
        .0,
        409
    );
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{pid}/join"),
        &alice,
        json!({}),
    );
    assert_eq!((code, v["joined"].as_bool()), (200, Some(true)), "{v}");
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{pid}/leave"),
        &alice,
        json!({}),
    );
    assert_eq!((code, v["joined"].as_bool()), (200, Some(false)), "{v}");

    // Its own calling hours: only on a day two days from now, so not now.
    let other_day = jiff::Timestamp::now()
        .in_tz("Europe/Berlin")
        .unwrap()
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap()
        .strftime("%a")
        .to_string();
    let (code, h) = post(
        &server,
        "/api/campaigns",
        &sam,
        campaign(
            "Weekend",
            "preview",
            json!({ "calling_hours": [{ "days": [other_day], "from": "09:00", "to": "17:00" }] }),
        ),
    );
    assert_eq!(code, 201, "{h}");
    assert_eq!(h["calling_hours"][0]["from"], "09:00");
    let hid = h["id"].as_i64().unwrap();
    post(
        &server,
        &format!("/api/campaigns/{hid}/state"),
        &sam,
        json!({ "state": "running" }),
    );
    let (code, v) = post(
        &server,
        &format!("/api/campaigns/{hid}/next"),
        &alice,
        json!({}),
    );
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("calling hours"),
        "{v}"
    );

    // Finished for good.
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/state"),
            &sam,
            json!({ "state": "finished" })
        )
        .0,
        200
    );
    assert_eq!(
        post(
            &server,
            &format!("/api/campaigns/{id}/state"),
            &sam,
            json!({ "state": "running" })
        )
        .0,
        409
    );
    assert_eq!(next(&bob).0, 409);
    // The report so far.
    let (code, r) = call(
        &server,
        "GET",
        &format!("/api/campaigns/{id}/report"),
        &sam,
        None,
    );
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["rows"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/api/campaigns/{id}/report"),
            &alice,
            None
        )
        .0,
        403
    );

    // Who made which campaign and ran or stopped it, in the audit log.
    let ada = server.login("9900");
    let (code, v) = call(
        &server,
        "GET",
        "/api/audit?action=campaign_state",
        &ada,
        None,
    );
    assert_eq!(code, 200, "{v}");
    let states: Vec<(String, String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (f("actor"), f("target"), f("detail"))
        })
        .collect();
    for expected in ["running", "finished"] {
        let expected = (
            "9001".to_string(),
            format!("campaign {id}"),
            expected.to_string(),
        );
        assert!(states.contains(&expected), "{expected:?} in {states:?}");
    }
    let (_, v) = call(
        &server,
        "GET",
        "/api/audit?action=campaign_created",
        &ada,
        None,
    );
    assert_eq!(v["entries"].as_array().unwrap().len(), 3, "{v}");
}
