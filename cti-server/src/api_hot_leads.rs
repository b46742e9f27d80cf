//! Hot-lead reports over REST ([`crate::hot`], [`crate::store::hot_leads`]).
//!
//! - `POST /api/leads/{id}/hot` `{"criteria": {"timeline", "selection_team", "owner",
//!   "go_live", "fit"}, "note", "call"}`: the telemarketer reports a lead they may work; all
//!   five criteria need an answer (what the customer said), `go_live` a date. The lead becomes
//!   `hot` and leaves the work list; the answer is due by `review_by_ms` (the end of the
//!   `leads.hot_lead_review_days`-th working day). The reporter's supervisors get a
//!   `hot_lead` CTI event.
//! - `GET /api/hot-leads?state=&from_ms=&to_ms=`: reports made in the range (default: the
//!   last 90 days), those the user may see: agents their own and their leads', supervisors
//!   their groups', admins all. Reports nobody answered in time show as accepted with no
//!   `decided_by`.
//! - `POST /api/hot-leads/{id}/decision` `{"decision": "accept"|"reject", "reason"}`: the
//!   reporter's supervisors and admins, once, before the deadline; a rejection needs a reason
//!   and returns the lead to the telemarketer's work list, due now. The reporter gets a
//!   `hot_lead` CTI event.
//!
//! The log for a range of days is the `hot_leads` report (JSON, CSV, XLSX).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hot::{Criteria, Decision};
use crate::http::AppState;
use crate::login::{ApiError, err, internal, optional_text, oversees, principal};
use crate::store::hot_leads::{DecideError, HotLeadRow, HotReport, ReportError};
use crate::users::Principal;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/leads/{id}/hot", post(report))
        .route("/api/hot-leads", get(list))
        .route("/api/hot-leads/{id}/decision", post(decide))
}

/// May `p` see this report: they made it, oversee who did, or may work its lead.
pub(crate) fn may_see(s: &AppState, p: &Principal, h: &HotLeadRow) -> bool {
    oversees(s, p, &[&h.reported_by])
        || h.lead_owner
            .as_deref()
            .is_some_and(|owner| oversees(s, p, &[owner]))
}

fn event(h: &HotLeadRow) -> Value {
    let mut v = json!(h);
    v["type"] = json!("hot_lead");
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    criteria: Criteria,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    call: Option<i64>,
}

async fn report(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<ReportBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let lead = s.store.lead(id).await.map_err(internal)?;
    if !lead.is_some_and(|l| crate::api_leads::may_see(&s, &p, &l)) {
        return Err(err(StatusCode::NOT_FOUND, format!("no lead {id}")));
    }
    let criteria = b
        .criteria
        .checked()
        .map_err(|e| err(StatusCode::BAD_REQUEST, e))?;
    let now = crate::store::now_ms();
    let r = HotReport {
        lead: id,
        criteria,
        note: optional_text("note", b.note)?,
        call: b.call,
        review_by_ms: s.hot_review.deadline(now),
    };
    let row = match s.store.report_hot_lead(&r, &p.name, now).await {
        Ok(row) => row,
        Err(ReportError::NoLead) => {
            return Err(err(StatusCode::NOT_FOUND, format!("no lead {id}")));
        }
        Err(ReportError::Closed(status)) => {
            return Err(err(
                StatusCode::CONFLICT,
                format!("lead {id} is {status}: only open leads are reported hot"),
            ));
        }
        Err(ReportError::Reported { id: h, state }) => {
            return Err(err(
                StatusCode::CONFLICT,
                format!("lead {id} is reported hot already (report {h}, {state})"),
            ));
        }
        Err(ReportError::Store(e)) => return Err(internal(e)),
    };
    for sup in s.access.overseers_of(&p.name) {
        s.cti.publish(&sup, event(&row));
    }
    Ok((StatusCode::CREATED, Json(json!(row))))
}

#[derive(Deserialize)]
struct ListQuery {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    state: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let now = crate::store::now_ms();
    let from = q.from_ms.unwrap_or(now - 90 * crate::leads::DAY_MS);
    let to = q.to_ms.unwrap_or(now + 1);
    if let Some(st) = q.state.as_deref()
        && !["pending", "accepted", "rejected"].contains(&st)
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("state {st:?}: pending, accepted or rejected"),
        ));
    }
    let rows: Vec<HotLeadRow> = s
        .store
        .hot_leads(from, to, q.state.as_deref(), now)
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|h| may_see(&s, &p, h))
        .collect();
    Ok(Json(json!({
        "hot_leads": rows,
        "review_days": s.hot_review.days(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let decision = Decision::parse(&b.decision).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("decision {:?}: accept or reject", b.decision),
        )
    })?;
    let reason = optional_text("reason", b.reason)?;
    if decision == Decision::Reject && reason.is_none() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "a rejection needs a reason: the telemarketer works the lead on with it",
        ));
    }
    let h = s
        .store
        .hot_lead(id)
        .await
        .map_err(internal)?
        .filter(|h| may_see(&s, &p, h))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no hot-lead report {id}")))?;
    if !p.is_supervisor_or_admin() || h.reported_by == p.name {
        return Err(err(
            StatusCode::FORBIDDEN,
            "the reporter's sales manager (a supervisor of their group) or an admin decides",
        ));
    }
    let now = crate::store::now_ms();
    match s
        .store
        .decide_hot_lead(id, decision, reason.as_deref(), &p.name, now)
        .await
    {
        Ok(row) => {
            s.cti.publish(&row.reported_by, event(&row));
            Ok(Json(json!(row)))
        }
        Err(DecideError::NotFound) => Err(err(
            StatusCode::NOT_FOUND,
            format!("no hot-lead report {id}"),
        )),
        Err(DecideError::Settled(row)) => Err(err(
            StatusCode::CONFLICT,
            match row.decided_by.as_deref() {
                None => format!("report {id} was accepted: nobody answered in time"),
                Some(by) => format!("report {id} is {} already, by {by}", row.state),
            },
        )),
        Err(DecideError::Store(e)) => Err(internal(e)),
    }
}
