//! The HTTP listener: `/healthz` and the REST API ([`crate::api`]); the agent pages grow here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::sip::service::SipHealth;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub sip: Arc<SipHealth>,
    pub store: Store,
    pub sip_addr: std::net::SocketAddr,
    pub acd: Option<crate::acd::actor::AcdHandle>,
    /// A bearer token with an admin's rights (scripts); users log in instead.
    pub api_token: Option<String>,
    /// Roles and groups: who may see whose calls.
    pub access: Arc<crate::access::Access>,
    /// Failed logins held against users and addresses.
    pub throttle: Arc<std::sync::Mutex<crate::users::Throttle>>,
    /// How long a login lasts.
    pub session_ttl: std::time::Duration,
    /// Agents may list and play their own calls' recordings.
    pub agents_hear_own: bool,
    /// Lead rules: the default country and the follow-up cadence.
    pub leads: Arc<crate::config::LeadsConfig>,
    /// CTI events to the users' WebSockets.
    pub cti: crate::cti::CtiHub,
    /// Media events (DTMF, prompt ends, timeouts) the engine had to drop because the SIP
    /// task did not take them in time.
    pub media_dropped_events: Arc<std::sync::atomic::AtomicU64>,
    /// How late the media engine's clock steps ran.
    pub media_clock: Arc<media::engine::ClockStats>,
    /// Call recordings the disk stopped or did not let start.
    pub recording_failures: Arc<std::sync::atomic::AtomicU64>,
    /// The calls in progress.
    pub live: crate::call::live::LiveCalls,
    /// IVR flows, prompts directory (reload, prompt upload).
    pub hosting: Option<Arc<crate::call::actor::Hosting>>,
    /// The prompt cache, to forget a replaced file.
    pub prompts: Option<Arc<crate::call::prompts::Prompts>>,
    /// The browser softphones (WebRTC over the CTI WebSocket).
    pub console: Option<crate::softphone::Console>,
    /// Each queue's service-level target in seconds.
    pub service_levels: Arc<std::collections::HashMap<String, u64>>,
    /// The result codes of each queue and the default ones.
    pub dispositions: Arc<crate::disposition::Dispositions>,
    /// The working days hot-lead reports are reviewed in.
    pub hot_review: Arc<crate::hot::ReviewCalendar>,
    /// Outbound campaigns: who works which progressive campaign.
    pub campaigns: Arc<crate::api_campaigns::Campaigns>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(crate::api::routes())
        .merge(crate::login::routes())
        .merge(crate::api_leads::routes())
        .merge(crate::api_hot_leads::routes())
        .merge(crate::api_campaigns::routes())
        .merge(crate::api_dial::routes())
        .merge(crate::api_appointments::routes())
        .merge(crate::disposition::routes())
        .merge(crate::openapi::routes())
        .route("/api/events", get(crate::cti::events))
        .route("/api/reports/{name}", get(crate::reports::report))
        .merge(crate::ui::routes())
        .with_state(state)
}

/// 200 when the database answers, 503 otherwise; SIP figures for a quick look.
async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let db_ok = s.store.ping().await.is_ok();
    let body = json!({
        "status": if db_ok { "ok" } else { "degraded" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "sip": {
            "listen": s.sip_addr.to_string(),
            "requests": s.sip.requests.load(Ordering::Relaxed),
            "responses": s.sip.responses.load(Ordering::Relaxed),
            "malformed": s.sip.malformed.load(Ordering::Relaxed),
            "transactions": s.sip.transactions.load(Ordering::Relaxed),
            "registrations": s.sip.registrations.load(Ordering::Relaxed),
            "tcp_connections": s.sip.tcp_connections.load(Ordering::Relaxed),
            "active_calls": s.sip.active_calls.load(Ordering::Relaxed),
            "calls_started": s.sip.calls_started.load(Ordering::Relaxed),
        },
        "media": {
            "dropped_events": s.media_dropped_events.load(Ordering::Relaxed),
            // Recordings the disk stopped or did not let start (the calls went on).
            "recording_failures": s.recording_failures.load(Ordering::Relaxed),
            // Clock steps (each sends its legs' frames) and how many ran late.
            "clock": {
                "steps": s.media_clock.steps.load(Ordering::Relaxed),
                "late_over_1ms": s.media_clock.late_over_1ms.load(Ordering::Relaxed),
                "late_over_2ms": s.media_clock.late_over_2ms.load(Ordering::Relaxed),
                "late_over_5ms": s.media_clock.late_over_5ms.load(Ordering::Relaxed),
                "max_late_us": s.media_clock.max_late_us.load(Ordering::Relaxed),
            },
        }
    });
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
