//! The REST API (under `/api`): agent states, queue figures and voicemail. Every request
//! carries `Authorization: Bearer <http.api_token>`; without a configured token the API is
//! off (403), so a server is never left open by omission.

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::acd::actor::AcdInput;
use crate::acd::{AcdEvent, AgentState, AgentStatus, QueueSnapshot};
use crate::http::AppState;

type ApiResult = Result<Json<Value>, (StatusCode, Json<Value>)>;

fn err(code: StatusCode, msg: impl Into<String>) -> (StatusCode, Json<Value>) {
    (code, Json(json!({ "error": msg.into() })))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/agents/{ext}", get(agent))
        .route("/api/agents/{ext}/state", post(set_agent_state))
        .route("/api/queues/{name}", get(queue))
        .route("/api/voicemails", get(voicemails))
        .route("/api/voicemails/{id}/heard", post(voicemail_heard))
}

/// Checks the bearer token (constant-time comparison: the token is a password).
fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), (StatusCode, Json<Value>)> {
    let Some(token) = s.api_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "the API is off: set http.api_token in the configuration",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

fn acd(s: &AppState) -> Result<&crate::acd::actor::AcdHandle, (StatusCode, Json<Value>)> {
    s.acd
        .as_ref()
        .ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "no ACD configured"))
}

fn state_name(st: &AgentState) -> (&'static str, Option<&str>) {
    match st {
        AgentState::LoggedOut => ("logged_out", None),
        AgentState::Available => ("available", None),
        AgentState::Break { reason } => ("break", Some(reason)),
        AgentState::Ringing => ("ringing", None),
        AgentState::OnCall => ("on_call", None),
        AgentState::WrapUp => ("wrap_up", None),
    }
}

fn agent_json(ext: &str, a: &AgentStatus, now: Instant) -> Value {
    let (state, reason) = state_name(&a.state);
    json!({
        "extension": ext,
        "state": state,
        "reason": reason,
        "since_s": a.since.map(|t| now.saturating_duration_since(t).as_secs()),
        "reachable": a.reachable,
        "lines": a.lines,
        "lines_in_use": a.lines_in_use,
        "answered_today": a.answered_today,
        "misses_in_row": a.misses_in_row,
        "pending_break": a.pending_break,
    })
}

async fn agent(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(ext): Path<String>,
) -> ApiResult {
    authorize(&s, &headers)?;
    match acd(&s)?.agent(&ext).await {
        Some(a) => Ok(Json(agent_json(&ext, &a, Instant::now()))),
        None => Err(err(StatusCode::NOT_FOUND, format!("no agent {ext}"))),
    }
}

#[derive(Deserialize)]
struct StateChange {
    /// `login`, `logout`, `available` (ends a break or wrap-up), `break`.
    state: String,
    reason: Option<String>,
}

async fn set_agent_state(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(ext): Path<String>,
    body: Result<Json<StateChange>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let Json(change) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let handle = acd(&s)?;
    if handle.agent(&ext).await.is_none() {
        return Err(err(StatusCode::NOT_FOUND, format!("no agent {ext}")));
    }
    let agent = ext.clone();
    let event = match change.state.as_str() {
        "login" => AcdEvent::AgentLogin { agent },
        "logout" => AcdEvent::AgentLogout { agent },
        "available" => AcdEvent::AgentReady { agent },
        "break" => AcdEvent::AgentBreak {
            agent,
            reason: change
                .reason
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "break".into()),
        },
        other => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("unknown state {other:?}: use login, logout, available or break"),
            ));
        }
    };
    if !handle.send_wait(AcdInput::Event(event)).await {
        return Err(err(StatusCode::SERVICE_UNAVAILABLE, "ACD stopped"));
    }
    match handle.agent(&ext).await {
        Some(a) => Ok(Json(agent_json(&ext, &a, Instant::now()))),
        None => Err(err(StatusCode::SERVICE_UNAVAILABLE, "ACD stopped")),
    }
}

fn queue_json(q: &QueueSnapshot, now: Instant) -> Value {
    json!({
        "name": q.name,
        "waiting": q.waiting.iter().map(|w| json!({
            "call": w.call.0,
            "caller": w.caller,
            "priority": w.priority,
            "waiting_s": now.saturating_duration_since(w.entered).as_secs(),
            "since_arrival_s": now.saturating_duration_since(w.arrived).as_secs(),
            "offered_to": w.offered_to,
        })).collect::<Vec<_>>(),
        "longest_wait_s": q.longest_wait.map(|d| d.as_secs()),
        "agents": {
            "available": q.agents_available,
            "ringing": q.agents_ringing,
            "on_call": q.agents_on_call,
            "wrap_up": q.agents_wrap_up,
            "on_break": q.agents_on_break,
            "logged_out": q.agents_logged_out,
            "unreachable": q.agents_unreachable,
        }
    })
}

async fn queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize(&s, &headers)?;
    match acd(&s)?.queue(&name).await {
        Some(q) => Ok(Json(queue_json(&q, Instant::now()))),
        None => Err(err(StatusCode::NOT_FOUND, format!("no queue {name}"))),
    }
}

#[derive(Deserialize)]
struct VoicemailFilter {
    mailbox: Option<String>,
    /// `true`: only messages nobody marked heard.
    unheard: Option<bool>,
}

async fn voicemails(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<VoicemailFilter>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let rows = s
        .store
        .voicemails(f.mailbox.as_deref(), f.unheard.unwrap_or(false))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "voicemails": rows })))
}

#[derive(Deserialize)]
struct Heard {
    by: String,
}

async fn voicemail_heard(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<Heard>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let Json(h) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    match s.store.mark_voicemail_heard(id, &h.by).await {
        Ok(true) => Ok(Json(json!({ "id": id, "heard_by": h.by }))),
        Ok(false) => Err(err(StatusCode::NOT_FOUND, format!("no voicemail {id}"))),
        Err(e) => Err(err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
