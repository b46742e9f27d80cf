//! Showroom appointments and their handover over REST ([`crate::store::appointments`]).
//!
//! - `POST /api/leads/{id}/appointments` `{"at_ms", "place", "note", "call"}`: books a visit
//!   for a lead the user may work (from the call: `call` links it); on the lead's timeline.
//! - `GET /api/appointments?from_ms=&to_ms=&state=`: the visits expected in the range (by
//!   default from the start of today on, a week), those the user may see: agents the ones
//!   they booked or of leads they work, supervisors their groups', admins all.
//! - `POST /api/appointments/{id}/outcome` `{"outcome": "shown"|"no_show"|"cancelled",
//!   "receiver": "..."}`: once per visit; `shown` needs the direct-sales person who received
//!   the customer and signs the handover. A no-show puts the lead back on its agent's work
//!   list. Supervisors, admins and the agent who booked it may record it.
//!
//! The handover log for a range of days is the `handovers` report (JSON, CSV, XLSX).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::login::{ApiError, err, internal, optional_text, oversees, principal};
use crate::store::appointments::{AppointmentRow, Booking, Outcome, OutcomeError};
use crate::users::Principal;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/leads/{id}/appointments", post(book))
        .route("/api/appointments", get(list))
        .route("/api/appointments/{id}/outcome", post(outcome))
}

/// May `p` see this appointment: they booked it, oversee who did, or may work its lead.
fn may_see(s: &AppState, p: &Principal, a: &AppointmentRow) -> bool {
    oversees(s, p, &[&a.booked_by])
        || match a.lead_owner.as_deref() {
            None => true,
            Some(owner) => oversees(s, p, &[owner]),
        }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookBody {
    at_ms: i64,
    #[serde(default)]
    place: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    call: Option<i64>,
}

async fn book(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<BookBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let lead = s.store.lead(id).await.map_err(internal)?;
    if !lead.is_some_and(|l| crate::api_leads::may_see(&s, &p, &l)) {
        return Err(err(StatusCode::NOT_FOUND, format!("no lead {id}")));
    }
    let now = crate::store::now_ms();
    // A visit booked now is for later today at the earliest, and within a year.
    if b.at_ms < now - 15 * 60_000 || b.at_ms > now + 366 * crate::leads::DAY_MS {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "at_ms: a time from now to a year ahead",
        ));
    }
    let booking = Booking {
        lead: id,
        at_ms: b.at_ms,
        place: optional_text("place", b.place)?,
        note: optional_text("note", b.note)?,
        call: b.call,
    };
    let row = s
        .store
        .book_appointment(&booking, &p.name)
        .await
        .map_err(internal)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no lead {id}")))?;
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
    let from = q
        .from_ms
        .unwrap_or(now - now.rem_euclid(crate::leads::DAY_MS));
    let to = q.to_ms.unwrap_or(from + 7 * crate::leads::DAY_MS);
    if let Some(st) = q.state.as_deref()
        && !["booked", "shown", "no_show", "cancelled"].contains(&st)
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("state {st:?}: booked, shown, no_show or cancelled"),
        ));
    }
    let rows: Vec<AppointmentRow> = s
        .store
        .appointments(from, to, q.state.as_deref())
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|a| may_see(&s, &p, a))
        .collect();
    Ok(Json(json!({ "appointments": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    outcome: String,
    #[serde(default)]
    receiver: Option<String>,
}

async fn outcome(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<OutcomeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let outcome = Outcome::parse(&b.outcome).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("outcome {:?}: shown, no_show or cancelled", b.outcome),
        )
    })?;
    let receiver = optional_text("receiver", b.receiver)?;
    if outcome == Outcome::Shown && receiver.is_none() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "a shown visit needs the receiver: who took the customer over",
        ));
    }
    let a = s
        .store
        .appointment(id)
        .await
        .map_err(internal)?
        .filter(|a| may_see(&s, &p, a))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no appointment {id}")))?;
    if !(p.is_supervisor_or_admin() || a.booked_by == p.name) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "the agent who booked the visit, supervisors and admins record how it went",
        ));
    }
    match s
        .store
        .appointment_outcome(id, outcome, receiver.as_deref(), &p.name)
        .await
    {
        Ok(row) => Ok(Json(json!(row))),
        Err(OutcomeError::NotFound) => {
            Err(err(StatusCode::NOT_FOUND, format!("no appointment {id}")))
        }
        Err(OutcomeError::Settled(state)) => Err(err(
            StatusCode::CONFLICT,
            format!("appointment {id} is {state} already"),
        )),
        Err(OutcomeError::Store(e)) => Err(internal(e)),
    }
}
