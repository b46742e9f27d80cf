//! Click-to-dial and the do-not-call list over REST.
//!
//! - `POST /api/calls` `{"number": "...", "lead": 12}`: the logged-in user's console places
//!   the call ([`crate::dial`]) to the number, or without one to the lead's primary phone;
//!   201 with the call's id, or the rule that refused it.
//! - `GET /api/dnc`: the do-not-call list (supervisors and admins).
//! - `POST /api/dnc` `{"number": "...", "reason": "..."}`: anybody records a customer's wish
//!   not to be called (the number is normalised to E.164); audited.
//! - `DELETE /api/dnc/{number}`: supervisors and admins take a number off; audited.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::login::{ApiError, audit, err, principal, require_supervisor};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/dnc", get(dnc_list).post(dnc_add))
        .route("/api/dnc/{number}", delete(dnc_remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    lead: Option<i64>,
}

/// `POST /api/calls`: places a call from the user's console phone.
pub async fn place_call(
    State(s): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Result<Json<DialBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(body) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let console = s.console.as_ref().ok_or_else(|| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "no softphones on this server",
        )
    })?;
    let source = from.ip().to_string();
    match console
        .place(&p.name, body.number.as_deref(), body.lead, &source)
        .await
    {
        Ok(key) => Ok((StatusCode::CREATED, Json(json!({ "call": key.0 })))),
        Err(refusal) => Err(err(
            StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::CONFLICT),
            refusal.message(),
        )),
    }
}

fn normalised(s: &AppState, number: &str) -> Result<String, ApiError> {
    crate::leads::e164(number, &s.leads.default_country).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{number:?} is not a phone number"),
        )
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn dnc_list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require_supervisor(&principal(&s, &headers).await?)?;
    let list = s.store.dnc_list().await.map_err(internal)?;
    Ok(Json(json!({ "numbers": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DncBody {
    number: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn dnc_add(
    State(s): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Result<Json<DncBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(body) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let number = normalised(&s, &body.number)?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "reason: 500 characters at most",
        ));
    }
    audit(&s, &p, "dnc_add", Some(&number), reason, Some(from)).await?;
    let added = s
        .store
        .dnc_add(&number, reason, &p.name)
        .await
        .map_err(internal)?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "number": number, "added": added }))))
}

async fn dnc_remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    require_supervisor(&p)?;
    let number = normalised(&s, &number)?;
    audit(&s, &p, "dnc_remove", Some(&number), None, Some(from)).await?;
    if !s.store.dnc_remove(&number).await.map_err(internal)? {
        return Err(err(
            StatusCode::NOT_FOUND,
            format!("{number} is not on the do-not-call list"),
        ));
    }
    Ok(Json(json!({ "number": number, "removed": true })))
}
