//! The REST API described as an OpenAPI 3.1 document, served at `/api/openapi.json`.
//!
//! Written out here operation by operation, with who may call it, its parameters, its
//! request body's fields and its answers; a test checks that every route the server
//! registers is described here and nothing else is, so the document cannot drift from the
//! router unnoticed.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::http::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}

/// One operation.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Query parameters: (name, type, description).
    query: &'static [(&'static str, &'static str, &'static str)],
    /// JSON body fields: (name, type, required, description); `None`: no JSON body.
    body: Option<&'static [(&'static str, &'static str, bool, &'static str)]>,
    /// Answers: (status, description).
    answers: &'static [(u16, &'static str)],
    /// Needs no login.
    public: bool,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        query: &[],
        body: None,
        answers: &[(200, "OK")],
        public: false,
    }
}

impl Op {
    const fn query(mut self, q: &'static [(&'static str, &'static str, &'static str)]) -> Op {
        self.query = q;
        self
    }

    const fn body(mut self, b: &'static [(&'static str, &'static str, bool, &'static str)]) -> Op {
        self.body = Some(b);
        self
    }

    const fn answers(mut self, a: &'static [(u16, &'static str)]) -> Op {
        self.answers = a;
        self
    }

    const fn public(mut self) -> Op {
        self.public = true;
        self
    }
}

const DAYS: &[(&str, &str, &str)] = &[
    (
        "from",
        "string",
        "first day, YYYY-MM-DD (UTC); default today",
    ),
    ("to", "string", "last day, included; default today"),
    ("format", "string", "json (default), csv or xlsx"),
];

/// Every operation of the API.
fn operations() -> Vec<Op> {
    vec![
        op(
            "get",
            "/healthz",
            "server",
            "Health: SIP, media and recording figures",
        )
        .public(),
        op("get", "/api/openapi.json", "server", "This document").public(),
        op(
            "post",
            "/api/login",
            "users",
            "Log in; answers a session token",
        )
        .body(&[
            ("user", "string", true, "the user (an agent's extension)"),
            ("password", "string", true, ""),
        ])
        .answers(&[
            (200, "token, user, role"),
            (401, "wrong user or password"),
            (429, "too many failures: wait"),
        ])
        .public(),
        op("post", "/api/logout", "users", "Ends the session"),
        op(
            "get",
            "/api/me",
            "users",
            "The logged-in user: name, role, queues",
        ),
        op(
            "post",
            "/api/me/password",
            "users",
            "Changes the user's password",
        )
        .body(&[
            ("old", "string", true, "the current password"),
            ("new", "string", true, "at least 8 characters"),
        ])
        .answers(&[
            (200, "changed"),
            (400, "too short"),
            (403, "wrong current password"),
        ]),
        op(
            "get",
            "/api/audit",
            "users",
            "The audit log, newest first (admins)",
        )
        .query(&[
            ("actor", "string", "one user's"),
            ("action", "string", "one action's, e.g. dial_refused"),
        ]),
        op(
            "get",
            "/api/events",
            "cti",
            "WebSocket of the user's CTI events and the browser softphone's signalling",
        )
        .query(&[(
            "token",
            "string",
            "the session token (browsers cannot set headers)",
        )])
        .answers(&[(101, "switching to the WebSocket"), (401, "no valid token")]),
        op(
            "get",
            "/api/agents",
            "agents",
            "The agents the user oversees, with their ACD state",
        ),
        op(
            "get",
            "/api/agents/{ext}",
            "agents",
            "One agent's ACD state (owes_disposition included)",
        )
        .answers(&[
            (200, "OK"),
            (403, "not the user's to see"),
            (404, "no such agent"),
        ]),
        op(
            "post",
            "/api/agents/{ext}/state",
            "agents",
            "Sets an agent's state",
        )
        .body(&[
            ("state", "string", true, "login, logout, available or break"),
            ("reason", "string", false, "the break's reason"),
        ])
        .answers(&[
            (200, "the new state"),
            (400, "unknown state"),
            (403, "not the user's to change"),
            (409, "a queue call's disposition is owed first"),
        ]),
        op(
            "get",
            "/api/queues/{name}",
            "queues",
            "A queue now: waiting callers, agents by state, today's service level and abandons",
        ),
        op(
            "get",
            "/api/voicemails",
            "voicemail",
            "Voicemails of the user's boxes",
        ),
        op(
            "post",
            "/api/voicemails/{id}/heard",
            "voicemail",
            "Marks a voicemail heard",
        ),
        op(
            "get",
            "/api/calls",
            "calls",
            "The calls in progress the user may see",
        ),
        op(
            "post",
            "/api/calls",
            "calls",
            "Places a call from the user's browser console (click-to-dial)",
        )
        .body(&[
            (
                "number",
                "string",
                false,
                "any spelling; E.164 with the default country",
            ),
            (
                "lead",
                "integer",
                false,
                "the lead called (without number: its primary phone)",
            ),
        ])
        .answers(&[
            (201, "call: the call's id"),
            (400, "not a phone number, or nothing to call"),
            (403, "outside the calling hours, or on the do-not-call list"),
            (404, "no such lead, or not the user's to work"),
            (
                409,
                "the console's phone is not connected, or all lines are in use",
            ),
            (503, "no outbound trunk"),
        ]),
        op(
            "post",
            "/api/calls/{id}/recording",
            "calls",
            "Pauses, resumes or starts a call's recording",
        )
        .body(&[
            ("paused", "boolean", false, "pause (true) or resume (false)"),
            (
                "record",
                "boolean",
                false,
                "true: start recording (on-demand policy)",
            ),
        ])
        .answers(&[(200, "OK"), (404, "no such call"), (409, "not recorded")]),
        op(
            "post",
            "/api/calls/{id}/disposition",
            "calls",
            "Records a call's result code (wrap-up)",
        )
        .body(&[
            ("code", "string", true, "one of the call's queue's codes"),
            ("lead", "integer", false, "also a contact on this lead"),
            ("note", "string", false, ""),
            (
                "next_follow_up_ms",
                "integer",
                false,
                "the agreed date; else the cadence",
            ),
        ])
        .answers(&[
            (200, "recorded"),
            (400, "not one of the codes"),
            (404, "not the user's call"),
            (409, "recorded already"),
        ]),
        op(
            "get",
            "/api/dispositions",
            "calls",
            "The result codes: default and per queue",
        ),
        op(
            "get",
            "/api/recordings",
            "recordings",
            "Recordings the user may hear, newest first",
        )
        .query(&[("call_id", "integer", "one call's")]),
        op(
            "get",
            "/api/recordings/{id}/audio",
            "recordings",
            "A recording's WAV (audited)",
        )
        .answers(&[
            (200, "audio/wav"),
            (403, "not the user's to hear"),
            (404, "no such recording"),
        ]),
        op(
            "post",
            "/api/recordings/{id}/legal-hold",
            "recordings",
            "Keeps a recording past its retention (admins)",
        )
        .body(&[
            (
                "hold",
                "boolean",
                true,
                "true keeps it, false lifts the hold",
            ),
            ("reason", "string", false, ""),
        ]),
        op(
            "get",
            "/api/monitor-sessions",
            "supervision",
            "Monitor sessions (listen, whisper, barge), newest first",
        ),
        op(
            "post",
            "/api/monitors/{id}/mode",
            "supervision",
            "Switches a monitor session's mode",
        )
        .body(&[("mode", "string", true, "listen, whisper or barge")]),
        op(
            "post",
            "/api/ivr/reload",
            "ivr",
            "Validates and reloads the IVR flows (admins)",
        )
        .answers(&[
            (200, "the new set"),
            (400, "the errors; the running set stays"),
        ]),
        op(
            "get",
            "/api/ivr/flows",
            "ivr",
            "The running flows with their source (admins)",
        ),
        op(
            "get",
            "/api/prompts",
            "ivr",
            "The prompts with their length (admins)",
        ),
        op(
            "get",
            "/api/prompts/{name}",
            "ivr",
            "A prompt's audio (admins)",
        ),
        op(
            "put",
            "/api/prompts/{name}",
            "ivr",
            "Uploads a prompt (any WAV; converted to 8 kHz mono; admins)",
        )
        .answers(&[(200, "stored"), (400, "not audio; nothing stored")]),
        op(
            "get",
            "/api/leads",
            "leads",
            "Searches the leads the user may see",
        )
        .query(&[
            ("q", "string", "name, company or phone"),
            ("grade", "string", ""),
            ("status", "string", ""),
        ]),
        op("post", "/api/leads", "leads", "Creates a lead")
            .body(&[
                ("name", "string", true, ""),
                ("phones", "array", false, "primary first; any spelling"),
                (
                    "customer_no",
                    "string",
                    false,
                    "the customer's number in another system",
                ),
                ("email", "string", false, ""),
                ("company", "string", false, ""),
                ("grade", "string", false, "H, A, B, C or invalid"),
                (
                    "source",
                    "string",
                    false,
                    "hq, web, inbound_call, showroom, event, ...",
                ),
                (
                    "owner",
                    "string",
                    false,
                    "an agent (supervisors and admins)",
                ),
                ("product", "string", false, ""),
                ("custom", "object", false, "admin-defined fields"),
            ])
            .answers(&[
                (201, "id"),
                (400, "bad field"),
                (409, "a lead has this phone"),
            ]),
        op(
            "post",
            "/api/leads/import",
            "leads",
            "Imports leads from CSV with a column mapping (supervisors, admins)",
        )
        .body(&[
            (
                "csv",
                "string",
                true,
                "the file: a header row, then a lead a row (`,` or `;`)",
            ),
            (
                "columns",
                "object",
                false,
                "lead field -> the file's column (phones: a list)",
            ),
            (
                "duplicates",
                "string",
                false,
                "skip (default), merge or add",
            ),
            ("source", "string", false, "for rows without one"),
            ("owner", "string", false, "for rows without one"),
        ])
        .answers(&[
            (200, "created, merged, skipped and rejected rows"),
            (400, "nothing imported"),
        ]),
        op(
            "get",
            "/api/leads/export.csv",
            "leads",
            "The leads the user may see as CSV",
        ),
        op(
            "get",
            "/api/leads/export.xlsx",
            "leads",
            "The leads the user may see as XLSX",
        ),
        op(
            "get",
            "/api/leads/{id}",
            "leads",
            "A lead with phones and timeline",
        ),
        op(
            "patch",
            "/api/leads/{id}",
            "leads",
            "Changes a lead (each change on the timeline)",
        )
        .body(&[
            ("name", "string", false, ""),
            ("company", "string", false, ""),
            ("email", "string", false, ""),
            (
                "grade",
                "string",
                false,
                "a new grade sets the next follow-up from its cadence",
            ),
            (
                "status",
                "string",
                false,
                "new, contacted, appointment, visited, won, lost, invalid",
            ),
            (
                "owner",
                "string",
                false,
                "hand the lead over (supervisors, admins)",
            ),
            ("product", "string", false, ""),
            ("custom", "object", false, ""),
            (
                "next_follow_up_ms",
                "integer",
                false,
                "the date agreed with the customer",
            ),
        ]),
        op(
            "post",
            "/api/leads/{id}/contacts",
            "leads",
            "Records a contact and the next follow-up",
        )
        .body(&[
            ("result", "string", true, ""),
            ("note", "string", false, ""),
            (
                "next_follow_up_ms",
                "integer",
                false,
                "else the grade's cadence",
            ),
        ]),
        op(
            "post",
            "/api/leads/{id}/notes",
            "leads",
            "A note on the timeline",
        )
        .body(&[("text", "string", true, "")]),
        op(
            "post",
            "/api/leads/{id}/appointments",
            "appointments",
            "Books a showroom visit",
        )
        .body(&[
            ("at_ms", "integer", true, "from now to a year ahead"),
            ("place", "string", false, ""),
            ("note", "string", false, ""),
            ("call", "integer", false, "the call it was booked on"),
        ])
        .answers(&[
            (201, "the appointment"),
            (400, "bad time or text"),
            (404, "no such lead"),
        ]),
        op(
            "get",
            "/api/appointments",
            "appointments",
            "Visits expected in a range the user may see",
        )
        .query(&[
            ("from_ms", "integer", "default: start of today"),
            ("to_ms", "integer", "default: a week on"),
            ("state", "string", "booked, shown, no_show or cancelled"),
        ]),
        op(
            "post",
            "/api/appointments/{id}/outcome",
            "appointments",
            "How a visit went: the handover",
        )
        .body(&[
            ("outcome", "string", true, "shown, no_show or cancelled"),
            (
                "receiver",
                "string",
                false,
                "who received the customer (shown)",
            ),
        ])
        .answers(&[
            (200, "the appointment"),
            (400, "bad outcome, or shown without receiver"),
            (403, "not the user's to record"),
            (404, "no such appointment"),
            (409, "recorded already"),
        ]),
        op(
            "post",
            "/api/leads/{id}/hot",
            "hot leads",
            "Reports a hot lead: all five criteria, reviewed within the working days",
        )
        .body(&[
            (
                "criteria",
                "object",
                true,
                "timeline, selection_team, owner, go_live (YYYY-MM-DD), fit: what the \
                 customer said for each; all five needed",
            ),
            ("note", "string", false, ""),
            ("call", "integer", false, "the call it was reported from"),
        ])
        .answers(&[
            (201, "the report, with review_by_ms"),
            (400, "a criterion missing or malformed"),
            (404, "no such lead"),
            (409, "reported already, or the lead is closed"),
        ]),
        op(
            "get",
            "/api/hot-leads",
            "hot leads",
            "Hot-lead reports made in a range that the user may see",
        )
        .query(&[
            ("from_ms", "integer", "default: 90 days ago"),
            ("to_ms", "integer", "default: now"),
            ("state", "string", "pending, accepted or rejected"),
        ]),
        op(
            "post",
            "/api/hot-leads/{id}/decision",
            "hot leads",
            "The sales manager accepts or rejects a report (before its deadline)",
        )
        .body(&[
            ("decision", "string", true, "accept or reject"),
            ("reason", "string", false, "needed to reject"),
        ])
        .answers(&[
            (200, "the report"),
            (400, "bad decision, or a rejection without reason"),
            (403, "not the reporter's supervisor or an admin"),
            (404, "no such report"),
            (409, "decided already, or accepted by silence"),
        ]),
        op(
            "get",
            "/api/campaigns",
            "campaigns",
            "The campaigns of the user's skill groups, leads counted by state",
        ),
        op(
            "post",
            "/api/campaigns",
            "campaigns",
            "A new outbound campaign, paused (the group's supervisor, admins)",
        )
        .body(&[
            ("name", "string", true, "unique"),
            ("script", "string", false, "what the agents say"),
            ("mode", "string", true, "preview or progressive"),
            (
                "skill",
                "string",
                true,
                "the skill group whose agents work it",
            ),
            (
                "retries",
                "integer",
                false,
                "tries after a failed call (default 2)",
            ),
            (
                "retry_after_s",
                "integer",
                false,
                "spacing of the tries (default 3600)",
            ),
            (
                "calling_hours",
                "array",
                false,
                "periods {days, from, to}; default: [dialing]",
            ),
            (
                "ends_at_ms",
                "integer",
                false,
                "deadline: no calls after it",
            ),
        ])
        .answers(&[
            (201, "the campaign"),
            (400, "a field is wrong"),
            (403, "not the group's supervisor or an admin"),
            (409, "the name is taken"),
        ]),
        op(
            "get",
            "/api/campaigns/{id}",
            "campaigns",
            "A campaign and its leads with their results (supervisors, admins)",
        ),
        op(
            "get",
            "/api/campaigns/{id}/report",
            "campaigns",
            "The campaign report, one row per lead",
        )
        .query(&[("format", "string", "json, csv or xlsx")]),
        op(
            "post",
            "/api/campaigns/{id}/leads",
            "campaigns",
            "Adds leads by id or by filter",
        )
        .body(&[
            ("leads", "array", false, "lead ids"),
            ("grade", "string", false, ""),
            ("source", "string", false, ""),
            ("status", "string", false, ""),
            ("owner", "string", false, ""),
        ])
        .answers(&[(200, "{added, already}"), (400, "neither ids nor a filter")]),
        op(
            "post",
            "/api/campaigns/{id}/state",
            "campaigns",
            "Runs, pauses or finishes a campaign",
        )
        .body(&[("state", "string", true, "running, paused or finished")])
        .answers(&[(200, "the campaign"), (409, "finished already")]),
        op(
            "post",
            "/api/campaigns/{id}/next",
            "campaigns",
            "Preview: the next due lead, held for the agent, with the script",
        )
        .answers(&[
            (
                200,
                "{campaign, name, script, lead (null when none is due)}",
            ),
            (
                409,
                "paused, outside the calling hours, progressive, or a lead unfinished",
            ),
        ]),
        op(
            "post",
            "/api/campaigns/{id}/leads/{lead}/dial",
            "campaigns",
            "Preview: calls the lead held for the agent from their console",
        )
        .answers(&[
            (201, "{call}"),
            (
                403,
                "do-not-call list (the lead leaves the campaign) or calling hours",
            ),
            (409, "not held for the agent, or no console phone"),
        ]),
        op(
            "post",
            "/api/campaigns/{id}/leads/{lead}/skip",
            "campaigns",
            "Preview: gives the lead back, due again after the retry spacing",
        ),
        op(
            "post",
            "/api/campaigns/{id}/join",
            "campaigns",
            "Progressive: the pacer calls the next lead whenever the agent is free",
        ),
        op(
            "post",
            "/api/campaigns/{id}/leave",
            "campaigns",
            "Progressive: no more calls for the agent",
        ),
        op(
            "get",
            "/api/worklist",
            "leads",
            "An agent's work list: first contacts due, follow-ups due and overdue",
        )
        .query(&[("agent", "string", "another agent's (their supervisors)")]),
        op(
            "get",
            "/api/dnc",
            "leads",
            "The do-not-call list (supervisors, admins)",
        ),
        op(
            "post",
            "/api/dnc",
            "leads",
            "Puts a number on the do-not-call list (audited)",
        )
        .body(&[
            ("number", "string", true, "any spelling"),
            ("reason", "string", false, ""),
        ])
        .answers(&[
            (201, "added"),
            (200, "there already"),
            (400, "not a phone number"),
        ]),
        op(
            "delete",
            "/api/dnc/{number}",
            "leads",
            "Takes a number off the list (supervisors, admins; audited)",
        )
        .answers(&[(200, "removed"), (404, "not on the list")]),
        op(
            "get",
            "/api/reports/{name}",
            "reports",
            "A report for a range of days (supervisors, admins): queues, agents, handovers, \
             hot_leads, funnel, sources, follow_up or outbound",
        )
        .query(DAYS)
        .answers(&[
            (200, "JSON {title, columns, rows}, or a CSV/XLSX download"),
            (400, "bad date or format"),
            (404, "no such report"),
        ]),
    ]
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let params: Vec<Value> = path_params(o.path)
            .into_iter()
            .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(o.query.iter().map(|(name, ty, what)| {
                json!({ "name": name, "in": "query", "required": false, "description": what, "schema": { "type": ty } })
            }))
            .collect();
        let mut answers = Map::new();
        for (code, what) in o.answers {
            answers.insert(code.to_string(), json!({ "description": what }));
        }
        if !o.public {
            answers
                .entry("401")
                .or_insert(json!({ "description": "not logged in" }));
        }
        let mut operation = json!({
            "tags": [o.tag],
            "summary": o.summary,
            "parameters": params,
            "responses": answers,
        });
        if o.public {
            operation["security"] = json!([]);
        }
        if let Some(fields) = o.body {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(name, ty, _, what)| {
                    (name.to_string(), json!({ "type": ty, "description": what }))
                })
                .collect();
            let required: Vec<&str> = fields.iter().filter(|f| f.2).map(|f| f.0).collect();
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": {
                    "type": "object", "properties": properties, "required": required,
                } } },
            });
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cti-server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Softphone and CTI call-center server: agents, queues, calls, \
                recordings, supervision, leads, appointments, hot leads, campaigns, reports. Send \
                `Authorization: Bearer <token>` (POST /api/login, or the configured API token).",
        },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [{ "bearer": [] }],
        "paths": paths,
    })
}

/// The `{name}` segments of a path.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// (method, path) of every `.route(...)` in a source file.
    fn routes_in(src: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for chunk in src.split(".route(").skip(1) {
            let Some(start) = chunk.find('"') else {
                continue;
            };
            let rest = &chunk[start + 1..];
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            // The handlers: up to the end of this route call (the next blank or `}` line).
            let call = rest[end..].split("\n    }").next().unwrap_or_default();
            for m in ["get", "post", "put", "patch", "delete"] {
                let named = call.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[i - 1] != b'_'
                });
                if named {
                    out.insert((m.to_string(), path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn every_api_route_is_described_and_nothing_else() {
        let sources = [
            include_str!("api.rs"),
            include_str!("api_leads.rs"),
            include_str!("api_dial.rs"),
            include_str!("api_appointments.rs"),
            include_str!("api_hot_leads.rs"),
            include_str!("api_campaigns.rs"),
            include_str!("disposition.rs"),
            include_str!("login.rs"),
            include_str!("http.rs"),
            include_str!("openapi.rs"),
        ];
        let routed: BTreeSet<(String, String)> = sources
            .iter()
            .flat_map(|s| routes_in(s))
            .filter(|(_, p)| p.starts_with("/api/") || p == "/healthz")
            .collect();
        let doc = document();
        let described: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        let missing: Vec<_> = routed.difference(&described).collect();
        let extra: Vec<_> = described.difference(&routed).collect();
        assert!(
            missing.is_empty(),
            "routes not in the document: {missing:?}"
        );
        assert!(extra.is_empty(), "described but not routed: {extra:?}");
        assert!(
            routed.len() >= 45,
            "the route scan finds the routes: {routed:?}"
        );
    }

    #[test]
    fn path_parameters_are_declared_and_bodies_list_their_required_fields() {
        let doc = document();
        let op = &doc["paths"]["/api/calls/{id}/disposition"]["post"];
        assert_eq!(op["parameters"][0]["name"], "id");
        assert_eq!(op["parameters"][0]["in"], "path");
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["required"], json!(["code"]));
        assert_eq!(op["responses"]["401"]["description"], "not logged in");
        let login = &doc["paths"]["/api/login"]["post"];
        assert_eq!(login["security"], json!([]));
        assert!(login["responses"].get("401").is_some());
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
