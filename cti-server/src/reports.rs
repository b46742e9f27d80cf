//! Reports for any date range, as JSON, CSV or XLSX: `GET /api/reports/{name}?from=&to=&format=`.
//!
//! - `queues`: the skill-group report, one row per queue: entered, answered, abandoned
//!   (and short abandons), overflowed, service level against the queue's
//!   `service_level_s`, average speed of answer, longest wait.
//! - `agents`: the agent workload report, one row per agent: queue calls answered, ring-no-
//!   answers, direct calls answered, calls out, talk time, and the time available, ringing,
//!   on call, in wrap-up and on break.
//! - `funnel` and `sources`: the business funnel of the leads created in the range (leads,
//!   contacted, hot H/A, appointments, visits, deals, with conversion rates) by month and
//!   agent, or by month and source (the lead-source conversion report).
//! - `follow_up`: the 24-hour first-contact rule (in time, late, missed, pending, the rate
//!   against the 90 % target) and overdue follow-ups, by agent, by source and in all.
//! - `outbound`: the calls each agent placed: connected, busy, no answer, other failures,
//!   connect rate, talk time.
//! - `handovers`: the handover log, one row per showroom visit expected in the range: the
//!   lead, when, where, who booked it, and how it went (shown to whom, no-show, cancelled).
//! - `hot_leads`: the hot-lead log, one row per report made in the range: the lead, who
//!   reported it when, the five criteria, the review deadline, and the answer (accepted,
//!   rejected with its reason, or accepted by silence).
//!
//! Dates are whole UTC days, `to` included. Supervisors get their groups' queues and agents,
//! admins everything. Hold time is the time the agent's calls (taken or placed) spent on hold.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::leads::DAY_MS;
use crate::login::{ApiError, err, principal, require_supervisor};

/// A report: a title, column names and rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A number with a fixed number of decimals in CSV.
    Num(f64),
    Empty,
}

impl Cell {
    fn opt_num(v: Option<f64>) -> Cell {
        v.map_or(Cell::Empty, Cell::Num)
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Num(n) => format!("{n:.1}"),
            Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(t) => json!(t),
            Cell::Int(i) => json!(i),
            Cell::Num(n) => json!((n * 10.0).round() / 10.0),
            Cell::Empty => Value::Null,
        }
    }
}

impl Table {
    pub fn to_csv(&self) -> Result<Vec<u8>, String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.columns).map_err(|e| e.to_string())?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::csv))
                .map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }

    pub fn to_xlsx(&self) -> Result<Vec<u8>, String> {
        use rust_xlsxwriter::{Format, Workbook};
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        let name: String = self
            .title
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ')
            .take(31)
            .collect();
        sheet.set_name(name.trim()).map_err(|e| e.to_string())?;
        let bold = Format::new().set_bold();
        for (c, title) in self.columns.iter().enumerate() {
            sheet
                .write_string_with_format(0, c as u16, *title, &bold)
                .map_err(|e| e.to_string())?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                let written = match cell {
                    Cell::Text(t) => sheet.write_string(r, c, t).map(|_| ()),
                    Cell::Int(i) => sheet.write_number(r, c, *i as f64).map(|_| ()),
                    Cell::Num(n) => sheet.write_number(r, c, *n).map(|_| ()),
                    Cell::Empty => Ok(()),
                };
                written.map_err(|e| e.to_string())?;
            }
        }
        sheet.autofit();
        book.save_to_buffer().map_err(|e| e.to_string())
    }

    pub(crate) fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let o: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(k, v)| (k.to_string(), v.json()))
                    .collect();
                Value::Object(o)
            })
            .collect();
        json!({ "title": self.title, "columns": self.columns, "rows": rows })
    }
}

#[derive(Deserialize)]
pub struct Range {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// `YYYY-MM-DD` as the UTC midnight it starts, in ms.
fn day_ms(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let (y, m, d): (i64, u32, u32) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * DAY_MS)
}

/// A UTC time to the minute.
fn utc_minute(ms: Option<i64>) -> Cell {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or(Cell::Empty, |t| {
            Cell::Text(t.strftime("%Y-%m-%d %H:%M").to_string())
        })
}

/// `GET /api/reports/{name}`.
pub async fn report(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Range>,
) -> Result<Response, ApiError> {
    let p = principal(&s, &headers).await?;
    require_supervisor(&p)?;
    let now = crate::store::now_ms();
    let today = now - now.rem_euclid(DAY_MS);
    let bad = |what: &str, v: &str| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{what} {v:?}: a date as YYYY-MM-DD"),
        )
    };
    let from = match q.from.as_deref() {
        Some(v) => day_ms(v).ok_or_else(|| bad("from", v))?,
        None => today,
    };
    let to = match q.to.as_deref() {
        Some(v) => day_ms(v).ok_or_else(|| bad("to", v))? + DAY_MS,
        None => today + DAY_MS,
    };
    if to <= from {
        return Err(err(StatusCode::BAD_REQUEST, "`to` is before `from`"));
    }
    let range = format!(
        "{} to {}",
        q.from.as_deref().unwrap_or("today"),
        q.to.as_deref().unwrap_or("today")
    );
    let internal =
        |e: crate::store::StoreError| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let table = match name.as_str() {
        "queues" => {
            let mut rows = Vec::new();
            for queue in s.access.queues_of(&p.name) {
                let threshold = s.service_levels.get(&queue).copied().unwrap_or(20);
                let f = s
                    .store
                    .queue_figures(&queue, from, to, threshold as i64 * 1000)
                    .await
                    .map_err(internal)?;
                rows.push(vec![
                    Cell::Text(queue),
                    Cell::Int(f.entered),
                    Cell::Int(f.answered),
                    Cell::Int(f.abandoned),
                    Cell::Int(f.abandoned_within),
                    Cell::Int(f.overflowed),
                    Cell::opt_num(f.service_level.map(|v| 100.0 * v)),
                    Cell::Int(threshold as i64),
                    Cell::opt_num(f.average_answer_ms.map(|v| v / 1000.0)),
                    Cell::opt_num(f.longest_wait_ms.map(|v| v as f64 / 1000.0)),
                ]);
            }
            Table {
                title: format!("Skill groups {range}"),
                columns: vec![
                    "queue",
                    "offered",
                    "answered",
                    "abandoned",
                    "short_abandons",
                    "overflowed",
                    "service_level_pct",
                    "service_level_s",
                    "average_speed_of_answer_s",
                    "longest_wait_s",
                ],
                rows,
            }
        }
        "agents" => {
            let mut rows = Vec::new();
            for agent in s.access.agents_of(&p.name) {
                let f = s
                    .store
                    .agent_figures(&agent, from, to, now)
                    .await
                    .map_err(internal)?;
                let state = |k: &str| Cell::Int(f.state_ms.get(k).copied().unwrap_or(0) / 1000);
                rows.push(vec![
                    Cell::Text(agent.clone()),
                    Cell::Int(f.answered),
                    Cell::Int(f.ring_no_answer),
                    Cell::Int(f.direct_in),
                    Cell::Int(f.calls_out),
                    Cell::Int(f.talk_ms / 1000),
                    Cell::Int(f.hold_ms / 1000),
                    state("available"),
                    state("ringing"),
                    state("on_call"),
                    state("wrap_up"),
                    state("break"),
                ]);
            }
            Table {
                title: format!("Agent workload {range}"),
                columns: vec![
                    "agent",
                    "queue_calls_answered",
                    "ring_no_answer",
                    "direct_calls_answered",
                    "calls_out",
                    "talk_s",
                    "hold_s",
                    "available_s",
                    "ringing_s",
                    "on_call_s",
                    "wrap_up_s",
                    "break_s",
                ],
                rows,
            }
        }
        "handovers" => {
            let visits = s
                .store
                .appointments(from, to, None)
                .await
                .map_err(internal)?;
            let time = utc_minute;
            let opt = |v: &Option<String>| v.clone().map_or(Cell::Empty, Cell::Text);
            let rows = visits
                .iter()
                .filter(|a| crate::login::oversees(&s, &p, &[&a.booked_by]))
                .map(|a| {
                    vec![
                        Cell::Int(a.id),
                        Cell::Int(a.lead_id),
                        Cell::Text(a.lead_name.clone()),
                        time(Some(a.at_ms)),
                        opt(&a.place),
                        Cell::Text(a.booked_by.clone()),
                        time(Some(a.booked_at_ms)),
                        Cell::Text(a.state.clone()),
                        opt(&a.receiver),
                        opt(&a.outcome_by),
                        time(a.outcome_at_ms),
                    ]
                })
                .collect();
            Table {
                title: format!("Handover log {range}"),
                columns: vec![
                    "appointment",
                    "lead",
                    "lead_name",
                    "visit_at_utc",
                    "place",
                    "booked_by",
                    "booked_at_utc",
                    "state",
                    "receiver",
                    "recorded_by",
                    "recorded_at_utc",
                ],
                rows,
            }
        }
        "hot_leads" => {
            let reports = s
                .store
                .hot_leads(from, to, None, now)
                .await
                .map_err(internal)?;
            let rows = reports
                .iter()
                .filter(|h| crate::api_hot_leads::may_see(&s, &p, h))
                .map(|h| {
                    let criteria: Value = serde_json::from_str(&h.criteria).unwrap_or(Value::Null);
                    let mut row = vec![
                        Cell::Int(h.id),
                        Cell::Int(h.lead_id),
                        Cell::Text(h.lead_name.clone()),
                        Cell::Text(h.reported_by.clone()),
                        utc_minute(Some(h.reported_at_ms)),
                    ];
                    row.extend(crate::hot::CRITERIA.iter().map(|(key, _)| {
                        criteria[key]
                            .as_str()
                            .map_or(Cell::Empty, |a| Cell::Text(a.to_string()))
                    }));
                    row.extend([
                        utc_minute(Some(h.review_by_ms)),
                        Cell::Text(h.state.clone()),
                        match (&h.decided_by, h.state.as_str()) {
                            (Some(by), _) => Cell::Text(by.clone()),
                            (None, "accepted") => Cell::Text("(silence)".into()),
                            (None, _) => Cell::Empty,
                        },
                        utc_minute(h.decided_at_ms),
                        h.reason.clone().map_or(Cell::Empty, Cell::Text),
                    ]);
                    row
                })
                .collect();
            Table {
                title: format!("Hot leads {range}"),
                columns: vec![
                    "report",
                    "lead",
                    "lead_name",
                    "reported_by",
                    "reported_at_utc",
                    "timeline",
                    "selection_team",
                    "owner",
                    "go_live",
                    "fit",
                    "review_by_utc",
                    "state",
                    "decided_by",
                    "decided_at_utc",
                    "reason",
                ],
                rows,
            }
        }
        "funnel" | "sources" | "follow_up" | "outbound" => {
            lead_report(&s, &p, &name, from, to, now, &range).await?
        }
        other => {
            return Err(err(
                StatusCode::NOT_FOUND,
                format!(
                    "no report {other:?}: queues, agents, handovers, hot_leads, funnel, sources, \
                     follow_up or outbound"
                ),
            ));
        }
    };
    let file = format!("{name}-{}", range.replace(' ', "_"));
    render(&table, q.format.as_deref(), &file)
}

/// A table as JSON, or as a CSV or XLSX download named `file` (without extension).
pub(crate) fn render(
    table: &Table,
    format: Option<&str>,
    file: &str,
) -> Result<Response, ApiError> {
    match format.unwrap_or("json") {
        "json" => Ok(Json(table.to_json()).into_response()),
        "csv" => {
            let body = table
                .to_csv()
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Ok(download(
                body,
                "text/csv; charset=utf-8",
                &format!("{file}.csv"),
            ))
        }
        "xlsx" => {
            let body = table
                .to_xlsx()
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
            Ok(download(
                body,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &format!("{file}.xlsx"),
            ))
        }
        other => Err(err(
            StatusCode::BAD_REQUEST,
            format!("format {other:?}: json, csv or xlsx"),
        )),
    }
}

/// The lead and outbound reports. Supervisors see their agents' leads and calls; admins
/// all, unowned leads too.
async fn lead_report(
    s: &AppState,
    p: &crate::users::Principal,
    name: &str,
    from: i64,
    to: i64,
    now: i64,
    range: &str,
) -> Result<Table, ApiError> {
    use crate::store::funnel::{follow_ups_by, funnel_by};
    let internal =
        |e: crate::store::StoreError| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let theirs = s.access.agents_of(&p.name);
    let visible = |agent: &str| p.is_admin() || theirs.iter().any(|a| a == agent);
    let pct = |n: i64, of: i64| Cell::opt_num((of > 0).then(|| 100.0 * n as f64 / of as f64));
    let table = match name {
        "funnel" | "sources" => {
            let rows: Vec<_> = s
                .store
                .funnel(from, to)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|r| visible(&r.agent))
                .collect();
            let by_source = name == "sources";
            let grouped = funnel_by(&rows, |r| {
                let key = if by_source { &r.source } else { &r.agent };
                (r.month.clone(), key.clone())
            });
            Table {
                title: if by_source {
                    format!("Lead sources {range}")
                } else {
                    format!("Business funnel {range}")
                },
                columns: vec![
                    "month",
                    if by_source { "source" } else { "agent" },
                    "leads",
                    "contacted",
                    "hot_h_or_a",
                    "appointments",
                    "visits",
                    "deals",
                    "contacted_pct",
                    "visit_pct",
                    "deal_pct",
                ],
                rows: grouped
                    .into_iter()
                    .map(|((month, key), f)| {
                        vec![
                            Cell::Text(month),
                            Cell::Text(key),
                            Cell::Int(f.leads),
                            Cell::Int(f.contacted),
                            Cell::Int(f.hot),
                            Cell::Int(f.appointments),
                            Cell::Int(f.visits),
                            Cell::Int(f.deals),
                            pct(f.contacted, f.leads),
                            pct(f.visits, f.leads),
                            pct(f.deals, f.leads),
                        ]
                    })
                    .collect(),
            }
        }
        "follow_up" => {
            let rows: Vec<_> = s
                .store
                .follow_ups(from, to, now)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|r| visible(&r.agent))
                .collect();
            let mut out = Vec::new();
            let groups = [
                ("agent", follow_ups_by(&rows, |r| r.agent.clone())),
                ("source", follow_ups_by(&rows, |r| r.source.clone())),
                ("all", follow_ups_by(&rows, |_| String::new())),
            ];
            for (by, group) in groups {
                for (key, f) in group {
                    out.push(vec![
                        Cell::Text(by.to_string()),
                        Cell::Text(key),
                        Cell::Int(f.first_contacts_due),
                        Cell::Int(f.in_time),
                        Cell::Int(f.late),
                        Cell::Int(f.missed),
                        Cell::Int(f.pending),
                        Cell::opt_num(f.rate_pct()),
                        Cell::Int(f.overdue_follow_ups),
                    ]);
                }
            }
            Table {
                title: format!("Follow-up compliance {range} (target 90 % in 24 h)"),
                columns: vec![
                    "by",
                    "name",
                    "first_contacts_due",
                    "in_24h",
                    "late",
                    "missed",
                    "pending",
                    "in_24h_pct",
                    "overdue_follow_ups",
                ],
                rows: out,
            }
        }
        _ => {
            let calls = s.store.placed_calls(from, to).await.map_err(internal)?;
            let mut by_agent: std::collections::BTreeMap<&str, [i64; 5]> = Default::default();
            for c in calls.iter().filter(|c| visible(&c.agent)) {
                let e = by_agent.entry(c.agent.as_str()).or_default();
                e[0] += 1;
                if c.answered {
                    e[1] += 1;
                    e[4] += c.talk_ms;
                } else {
                    match c.end_cause.as_deref() {
                        Some("agent_busy") => e[2] += 1,
                        Some("no_answer") => e[3] += 1,
                        _ => {}
                    }
                }
            }
            Table {
                title: format!("Outbound calls {range}"),
                columns: vec![
                    "agent",
                    "calls",
                    "connected",
                    "busy",
                    "no_answer",
                    "other_failures",
                    "connect_pct",
                    "talk_s",
                    "average_talk_s",
                ],
                rows: by_agent
                    .into_iter()
                    .map(|(agent, [calls, connected, busy, no_answer, talk])| {
                        vec![
                            Cell::Text(agent.to_string()),
                            Cell::Int(calls),
                            Cell::Int(connected),
                            Cell::Int(busy),
                            Cell::Int(no_answer),
                            Cell::Int(calls - connected - busy - no_answer),
                            pct(connected, calls),
                            Cell::Int(talk / 1000),
                            Cell::opt_num(
                                (connected > 0).then(|| talk as f64 / 1000.0 / connected as f64),
                            ),
                        ]
                    })
                    .collect(),
            }
        }
    };
    Ok(table)
}

pub(crate) fn download(body: Vec<u8>, content_type: &'static str, file: &str) -> Response {
    let disposition = format!("attachment; filename=\"{file}\"");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_midnights() {
        assert_eq!(day_ms("1970-01-01"), Some(0));
        assert_eq!(day_ms("2026-11-23"), Some(1_795_392_000_000));
        assert_eq!(day_ms("2024-02-29"), Some(1_709_164_800_000));
        for bad in ["2026-13-01", "2026-11", "yesterday", "2026-11-32", ""] {
            assert_eq!(day_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_table_renders_as_csv_and_json() {
        let t = Table {
            title: "T".into(),
            columns: vec!["queue", "answered", "service_level_pct", "note"],
            rows: vec![vec![
                Cell::Text("sales, main".into()),
                Cell::Int(3),
                Cell::Num(66.666),
                Cell::Empty,
            ]],
        };
        let csv = String::from_utf8(t.to_csv().unwrap()).unwrap();
        assert_eq!(
            csv,
            "queue,answered,service_level_pct,note\n\"sales, main\",3,66.7,\n"
        );
        let j = t.to_json();
        assert_eq!(j["rows"][0]["service_level_pct"], 66.7);
        assert!(j["rows"][0]["note"].is_null());
        let xlsx = t.to_xlsx().unwrap();
        assert_eq!(&xlsx[..2], b"PK", "an XLSX file is a zip");
    }
}
