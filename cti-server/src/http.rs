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
    /// What the planes count (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The media engine's packet, loss and jitter figures.
    pub media_counters: Arc<media::engine::MediaCounters>,
    /// Where SIP WebSockets (`GET /sip`) hand their messages to the SIP task.
    pub sip_ws: Option<SipWsIngress>,
}

/// What a SIP WebSocket needs to reach the SIP task.
#[derive(Clone)]
pub struct SipWsIngress {
    pub to_core: tokio::sync::mpsc::Sender<crate::sip::transport::Inbound>,
    pub idle: std::time::Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Marks requests that came over the HTTPS listener (cookies get `Secure`, SIP WebSockets
/// are WSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// True when the request came over HTTPS.
pub fn over_tls(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<OverTls>().is_some()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/sip", get(sip_websocket))
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
        .layer(axum::middleware::from_fn(crate::login::csrf_guard))
        .with_state(state)
}

/// SIP over WebSocket (RFC 7118): `GET /sip` asking for the `sip` subprotocol; WSS on the
/// HTTPS listener. Browser SIP clients (JsSIP, SIP.js) register and take calls over it.
async fn sip_websocket(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    tls: Option<axum::Extension<OverTls>>,
    ws: axum::extract::WebSocketUpgrade,
) -> axum::response::Response {
    use crate::sip::types::Transport;
    use axum::response::IntoResponse;
    let Some(ingress) = s.sip_ws.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "SIP over WebSocket is not running",
        )
            .into_response();
    };
    let ws = ws.protocols(["sip"]);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "SIP over WebSocket needs the \"sip\" subprotocol (Sec-WebSocket-Protocol: sip, RFC 7118)",
        )
            .into_response();
    }
    let transport = if tls.is_some() {
        Transport::Wss
    } else {
        Transport::Ws
    };
    let peer = crate::sip::transaction::Peer::new(transport, addr);
    ws.on_upgrade(move |socket| {
        crate::sip::transport::run_websocket(
            socket,
            peer,
            ingress.idle,
            ingress.to_core,
            ingress.metrics,
        )
    })
}

/// Prometheus metrics (text format 0.0.4).
async fn metrics(State(s): State<AppState>) -> impl axum::response::IntoResponse {
    let floor = match &s.acd {
        Some(acd) => acd.floor().await,
        None => None,
    };
    let body = crate::metrics::render(&crate::metrics::Sources {
        metrics: &s.metrics,
        sip: &s.sip,
        media_clock: &s.media_clock,
        media: &s.media_counters,
        media_dropped_events: s.media_dropped_events.load(Ordering::Relaxed),
        recording_failures: s.recording_failures.load(Ordering::Relaxed),
        floor,
        cti_sockets: s.cti.sockets(),
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
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
