//! Dispositions: the result code an agent records for each call in wrap-up.
//!
//! Each queue may have its own codes (`dispositions` in `[[queues]]`); a queue that has them
//! holds its agents in wrap-up until the code is recorded (the ACD's
//! [`crate::acd::AcdEvent::Disposed`]): they cannot go available before. Calls outside a
//! queue (direct calls, calls placed from the console) and queues without a list take the
//! codes of `leads.dispositions`, without the hold.
//!
//! `POST /api/calls/{id}/disposition` `{"code", "lead", "note", "next_follow_up_ms"}`: the
//! call's agent records the code, once per call; with a lead, it is also a contact on the
//! lead's timeline (the next follow-up from the date given or the grade's cadence).

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::acd::AcdEvent;
use crate::acd::actor::AcdInput;
use crate::http::AppState;
use crate::login::{ApiError, err, principal};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/calls/{id}/disposition", post(dispose))
        .route("/api/dispositions", get(list))
}

/// `GET /api/dispositions`: the default codes and each queue's own.
async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    principal(&s, &headers).await?;
    Ok(Json(json!({
        "default": s.dispositions.default,
        "queues": s.dispositions.queues,
    })))
}

/// Checks a list of result codes: lower-case words (`a-z`, `0-9`, `_`) of 1 to 40
/// characters, each once.
pub fn check_codes(what: &str, codes: &[String]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for c in codes {
        let ok = (1..=40).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(format!(
                "{what}: {c:?} is not a result code (a-z, 0-9 and _, at most 40)"
            ));
        }
        if !seen.insert(c) {
            return Err(format!("{what}: {c:?} is listed twice"));
        }
    }
    Ok(())
}

/// The result codes of each queue and the default ones.
#[derive(Debug, Clone, Default)]
pub struct Dispositions {
    pub default: Vec<String>,
    /// Queues with their own codes (enforced).
    pub queues: HashMap<String, Vec<String>>,
}

impl Dispositions {
    pub fn from_config(c: &crate::config::Config) -> Dispositions {
        Dispositions {
            default: c.leads.dispositions.clone(),
            queues: c
                .queues
                .iter()
                .filter(|q| !q.dispositions.is_empty())
                .map(|q| (q.name.clone(), q.dispositions.clone()))
                .collect(),
        }
    }

    /// The codes for a call of `queue` (or outside any).
    pub fn codes(&self, queue: Option<&str>) -> &[String] {
        queue
            .and_then(|q| self.queues.get(q))
            .unwrap_or(&self.default)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisposeBody {
    code: String,
    #[serde(default)]
    lead: Option<i64>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    next_follow_up_ms: Option<i64>,
}

/// The queue of a call of `user`'s, if it is theirs: the disposition the ACD holds them
/// for, a call in progress, or a finished call's record (written as the call ends: a
/// disposition right after the hang-up may wait a moment for it).
async fn their_call(s: &AppState, user: &str, id: u64) -> Result<Option<String>, ApiError> {
    let is_agent = |x: &str| s.access.role(x).is_some();
    if let Some(acd) = &s.acd
        && let Some(a) = acd.agent(user).await
        && let Some((call, queue)) = a.owes_disposition
        && call.0 == id
    {
        return Ok(Some(queue));
    }
    if let Some(c) = s.live.list().into_iter().find(|c| c.id == id) {
        return match c.staff(is_agent) {
            Some((agent, _)) if agent == user => Ok(c.queue.clone()),
            _ => Err(not_theirs(id)),
        };
    }
    for _ in 0..20 {
        let row = s
            .store
            .call_parties(id as i64)
            .await
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if let Some((agent, placed_by, queue)) = row {
            if agent.as_deref() == Some(user) || placed_by.as_deref() == Some(user) {
                return Ok(queue);
            }
            return Err(not_theirs(id));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(not_theirs(id))
}

fn not_theirs(id: u64) -> ApiError {
    err(StatusCode::NOT_FOUND, format!("no call {id} of yours"))
}

async fn dispose(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Result<Json<DisposeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let queue = their_call(&s, &p.name, id).await?;
    let codes = s.dispositions.codes(queue.as_deref());
    let code = b.code.trim();
    if !codes.iter().any(|c| c == code) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("code {code:?}: one of {}", codes.join(", ")),
        ));
    }
    let note = b
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "note: 2000 characters at most",
        ));
    }
    if let Some(lead) = b.lead {
        crate::api_leads::visible_lead(&s, &p, lead).await?;
    }
    let recorded = s
        .store
        .record_disposition(
            id as i64,
            &p.name,
            code,
            queue.as_deref(),
            b.lead,
            note.as_deref(),
        )
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !recorded {
        return Err(err(
            StatusCode::CONFLICT,
            format!("call {id} has its disposition already"),
        ));
    }
    if let Some(lead) = b.lead {
        let detail = json!({ "result": code, "note": note, "call_id": id });
        crate::api_leads::contact_made(&s, &p, lead, detail, b.next_follow_up_ms).await?;
    }
    if let Some(acd) = &s.acd {
        acd.send_wait(AcdInput::Event(AcdEvent::Disposed {
            call: crate::acd::CallRef(id),
            agent: p.name.clone(),
        }))
        .await;
    }
    tracing::info!(call = id, agent = %p.name, code, "disposition");
    Ok(Json(json!({ "call": id, "code": code, "queue": queue })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn codes_are_lower_case_words_each_once() {
        assert!(check_codes("q", &codes(&["sale", "call_back2"])).is_ok());
        let e = check_codes("queue \"sales\" dispositions", &codes(&["Sale"])).unwrap_err();
        assert!(e.contains("\"Sale\" is not a result code"), "{e}");
        assert!(check_codes("q", &codes(&[""])).is_err());
        assert!(check_codes("q", &codes(&["no answer"])).is_err());
        assert!(check_codes("q", &codes(&[&"x".repeat(41)])).is_err());
        let e = check_codes("q", &codes(&["sale", "sale"])).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
    }

    #[test]
    fn a_queue_without_codes_uses_the_default_ones() {
        let d = Dispositions {
            default: codes(&["reached", "no_answer"]),
            queues: [("service".to_string(), codes(&["solved", "escalated"]))].into(),
        };
        assert_eq!(d.codes(Some("service")), codes(&["solved", "escalated"]));
        assert_eq!(d.codes(Some("sales")), codes(&["reached", "no_answer"]));
        assert_eq!(d.codes(None), codes(&["reached", "no_answer"]));
    }
}
