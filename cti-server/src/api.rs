//! The REST API (under `/api`): agent states, queue figures, live calls, voicemail and
//! recordings. Every request carries `Authorization: Bearer <token>`: a login session's
//! ([`crate::login`]) or the configured `http.api_token` (an admin's rights). What a user
//! sees follows their role: agents their own calls, supervisors their groups', admins all.

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
use crate::login::{audit, err, oversees, principal, require_admin, require_supervisor};

type ApiResult = Result<Json<Value>, (StatusCode, Json<Value>)>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/agents", get(agents))
        .route("/api/agents/{ext}", get(agent))
        .route("/api/agents/{ext}/state", post(set_agent_state))
        .route("/api/queues/{name}", get(queue))
        .route("/api/voicemails", get(voicemails))
        .route("/api/voicemails/{id}/heard", post(voicemail_heard))
        .route(
            "/api/calls",
            get(live_calls).post(crate::api_dial::place_call),
        )
        .route("/api/calls/{id}/recording", post(pause_recording))
        .route("/api/recordings", get(recordings))
        .route("/api/recordings/{id}/audio", get(recording_audio))
        .route("/api/recordings/{id}/legal-hold", post(legal_hold))
        .route("/api/monitor-sessions", get(monitor_sessions))
        .route("/api/monitors/{id}/mode", post(monitor_mode))
        .route("/api/ivr/reload", post(reload_flows))
        .route("/api/ivr/flows", get(flows))
        .route("/api/prompts", get(prompts))
        .route(
            "/api/prompts/{name}",
            axum::routing::put(upload_prompt)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_PROMPT_BYTES))
                .get(prompt_audio),
        )
}

/// Largest prompt or hold-music upload (a few minutes of 48 kHz stereo).
const MAX_PROMPT_BYTES: usize = 64 << 20;

/// Reloads the IVR flows from `ivr.dir`. A broken set is refused with every error and the
/// running set stays; calls already in a flow keep the version they started with.
async fn reload_flows(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    require_admin(&principal(&s, &headers).await?)?;
    let hosting = hosting(&s)?;
    match hosting.flows.reload() {
        Ok(set) => {
            let mut flows: Vec<&str> = set.names().collect();
            flows.sort_unstable();
            tracing::info!(?flows, "IVR flows reloaded");
            Ok(Json(json!({ "reloaded": true, "flows": flows })))
        }
        Err(errors) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the flows have errors; the running flows stay",
                "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            })),
        )),
    }
}

/// The IVR side (flows, prompts), or 503 when the server runs without it.
fn hosting(
    s: &AppState,
) -> Result<&std::sync::Arc<crate::call::actor::Hosting>, crate::login::ApiError> {
    s.hosting
        .as_ref()
        .ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "no IVR configured"))
}

/// `GET /api/ivr/flows` (supervisors, admins): the running flows, each with its
/// description, nodes and file text as loaded (a file edited since shows after a reload).
async fn flows(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    require_supervisor(&principal(&s, &headers).await?)?;
    let hosting = hosting(&s)?;
    let set = hosting.flows.current();
    let mut names: Vec<&str> = set.names().collect();
    names.sort_unstable();
    let mut out = Vec::new();
    for name in names {
        let Some(flow) = set.get(name) else { continue };
        out.push(json!({
            "name": flow.name(),
            "description": flow.description(),
            "file": flow.file().display().to_string(),
            "nodes": flow.node_names().collect::<Vec<_>>(),
            "source": flow.source(),
        }));
    }
    Ok(Json(json!({ "flows": out })))
}

/// `GET /api/prompts` (supervisors, admins): the prompt files, with their length.
async fn prompts(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    require_supervisor(&principal(&s, &headers).await?)?;
    let hosting = hosting(&s)?;
    let dir = hosting.config.prompts_dir.clone();
    let list = tokio::task::spawn_blocking(move || list_prompts(&dir))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(json!({ "prompts": list })))
}

fn list_prompts(dir: &std::path::Path) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        if !path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("wav"))
        {
            continue;
        }
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (duration_ms, error) = match hound::WavReader::open(&path) {
            Ok(r) => {
                let spec = r.spec();
                let frames = u64::from(r.duration());
                (
                    Some(frames * 1000 / u64::from(spec.sample_rate.max(1))),
                    None,
                )
            }
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(json!({
            "name": name,
            "bytes": e.metadata().map(|m| m.len()).unwrap_or(0),
            "duration_ms": duration_ms,
            "error": error,
        }));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(out)
}

/// `GET /api/prompts/{name}` (supervisors, admins): the prompt's WAV.
async fn prompt_audio(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::response::Response, (StatusCode, Json<Value>)> {
    use axum::http::header;
    use axum::response::IntoResponse;
    require_supervisor(&principal(&s, &headers).await?)?;
    let hosting = hosting(&s)?;
    let stem = prompt_stem(&name)?;
    let path = hosting.config.prompts_dir.join(format!("{stem}.wav"));
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response()),
        Err(_) => Err(err(StatusCode::NOT_FOUND, format!("no prompt {stem}"))),
    }
}

/// A prompt's file name stem, checked: letters, digits, '-' and '_', at most 64.
fn prompt_stem(name: &str) -> Result<&str, (StatusCode, Json<Value>)> {
    let stem = name.strip_suffix(".wav").unwrap_or(name);
    if stem.is_empty()
        || stem.len() > 64
        || !stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("prompt name {name:?}: use letters, digits, '-' and '_' (at most 64)"),
        ));
    }
    Ok(stem)
}

/// Stores a prompt or hold music: any WAV hound reads (PCM 8-32 bit or float, any rate, mono
/// or stereo) is checked, converted to 8 kHz mono 16-bit and written atomically to
/// `<ivr.dir>/prompts/<name>.wav`; the next play reads the new file.
async fn upload_prompt(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    require_admin(&principal(&s, &headers).await?)?;
    let hosting = hosting(&s)?;
    let stem = prompt_stem(&name)?;
    let dir = hosting.config.prompts_dir.clone();
    let path = dir.join(format!("{stem}.wav"));
    let stored = path.clone();
    let result = tokio::task::spawn_blocking(move || store_prompt(&body, &path))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match result {
        Ok(duration_ms) => {
            if let Some(p) = &s.prompts {
                p.invalidate(&stored);
            }
            tracing::info!(path = %stored.display(), duration_ms, "prompt stored");
            Ok(Json(json!({
                "name": stem,
                "path": stored.display().to_string(),
                "duration_ms": duration_ms,
                "format": "WAV, 8000 Hz, mono, 16-bit",
            })))
        }
        Err(e) => Err(e),
    }
}

/// Checks and converts `data`, then writes it beside `path` and renames it into place, so a
/// call reading the old file never sees half a new one. Returns the length in ms.
fn store_prompt(data: &[u8], path: &std::path::Path) -> Result<u64, (StatusCode, Json<Value>)> {
    let prompt =
        media::prompt::Prompt::from_wav(std::io::Cursor::new(data), path).map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                format!("not a usable WAV file: {e}"),
            )
        })?;
    let pcm = prompt.pcm_8k();
    if pcm.is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "the WAV file has no audio"));
    }
    let io = |e: std::io::Error| {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the prompt: {e}"),
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("wav.part");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write = || -> Result<(), hound::Error> {
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        for &s in pcm {
            w.write_sample(s)?;
        }
        w.finalize()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the prompt: {e}"),
        ));
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(pcm.len() as u64 / 8)
}

/// `GET /api/calls`: the calls in progress the user may see (their own, their groups', or
/// all), oldest first.
async fn live_calls(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let calls: Vec<_> = s
        .live
        .list()
        .into_iter()
        .filter(|c| oversees(&s, &p, &call_parties(c)))
        .collect();
    Ok(Json(json!({ "calls": calls })))
}

/// The staff a live call may concern: its agent and its caller.
fn call_parties(c: &crate::call::live::LiveCall) -> Vec<&str> {
    c.agent
        .as_deref()
        .into_iter()
        .chain([c.caller.as_str()])
        .collect()
}

#[derive(Deserialize)]
struct PauseBody {
    /// Pause (true) or resume (false).
    paused: Option<bool>,
    /// `true`: start recording now (the on-demand policy).
    record: Option<bool>,
}

/// `POST /api/calls/{id}/recording` with `{"paused": true|false}`: pauses or resumes the
/// call's recording (silence is recorded meanwhile, and the index keeps the markers).
async fn pause_recording(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Json(body): Json<PauseBody>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let visible = s
        .live
        .list()
        .into_iter()
        .any(|c| c.id == id && oversees(&s, &p, &call_parties(&c)));
    if !visible {
        return Err(err(
            StatusCode::NOT_FOUND,
            format!("no call {id} in progress"),
        ));
    }
    let inbox = s
        .live
        .inbox(crate::call::CallKey(id))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no call {id} in progress")))?;
    let ended = || err(StatusCode::NOT_FOUND, format!("call {id} just ended"));
    if body.record == Some(true) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        inbox
            .send(crate::call::actor::CallEvent::RecordNow { reply })
            .await
            .map_err(|_| ended())?;
        return match answer.await {
            Ok(Ok(())) => Ok(Json(json!({ "recording": true }))),
            Ok(Err(why)) => Err(err(StatusCode::CONFLICT, why)),
            Err(_) => Err(ended()),
        };
    }
    let Some(paused) = body.paused else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            r#"say {"paused": true|false} or {"record": true}"#,
        ));
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    inbox
        .send(crate::call::actor::CallEvent::PauseRecording { paused, reply })
        .await
        .map_err(|_| ended())?;
    match answer.await {
        Ok(Ok(at)) => Ok(Json(
            json!({ "paused": paused, "at_ms": at.as_millis() as u64 }),
        )),
        Ok(Err(why)) => Err(err(StatusCode::CONFLICT, why)),
        Err(_) => Err(ended()),
    }
}

#[derive(Deserialize)]
struct RecordingFilter {
    call_id: Option<i64>,
}

/// `GET /api/recordings?call_id=N`: the recordings index, newest first.
async fn recordings(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<RecordingFilter>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let rows: Vec<_> = s
        .store
        .recordings(f.call_id)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .into_iter()
        .filter(|r| may_hear(&s, &p, r))
        .collect();
    // The index as users search it: with the call's queue and the leads it is filed under.
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        v["queue"] = json!(r.queue());
        v["lead_ids"] = json!(s.store.leads_of_call(r.call_id).await.unwrap_or_default());
        out.push(v);
    }
    Ok(Json(json!({ "recordings": out })))
}

/// May `p` list and play this recording? Admins all; supervisors their groups' calls;
/// agents their own calls when `recording.agents_hear_own` allows.
fn may_hear(
    s: &AppState,
    p: &crate::users::Principal,
    r: &crate::store::recordings::RecordingRow,
) -> bool {
    let parties = r.parties();
    if p.is_supervisor_or_admin() {
        return oversees(s, p, &parties);
    }
    s.agents_hear_own && parties.contains(&p.name.as_str())
}

/// `GET /api/recordings/{id}/audio`: the WAV, streamed from the file; a `Range: bytes=...`
/// request (one range) gets 206 with that part, so a player can seek. Every access, and
/// every refused one, is in the audit log.
async fn recording_audio(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<axum::response::Response, (StatusCode, Json<Value>)> {
    use axum::http::header;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let p = principal(&s, &headers).await?;
    let row = s
        .store
        .recording(id)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .filter(|r| may_hear(&s, &p, r));
    let range_asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let target = id.to_string();
    let Some(row) = row else {
        // Not found and not allowed look the same: ids of other people's calls stay hidden.
        audit(
            &s,
            &p,
            "recording.audio_refused",
            Some(&target),
            None,
            Some(from),
        )
        .await?;
        return Err(err(StatusCode::NOT_FOUND, format!("no recording {id}")));
    };
    if let Some(at) = row.deleted_at_ms {
        return Err(err(
            StatusCode::GONE,
            format!("recording {id} was deleted by retention (at_ms {at})"),
        ));
    }
    audit(
        &s,
        &p,
        "recording.audio",
        Some(&target),
        range_asked,
        Some(from),
    )
    .await?;
    let mut file = tokio::fs::File::open(&row.path).await.map_err(|e| {
        err(
            StatusCode::GONE,
            format!("recording file {}: {e}", row.path),
        )
    })?;
    let size = file
        .metadata()
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| byte_range(v, size));
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b + 1 - a),
        Some(None) => {
            return Ok(axum::response::Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(axum::body::Body::empty())
                .expect("static response"));
        }
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file.take(len)));
    let mut r = axum::response::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, len);
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(r.body(body).expect("valid response"))
}

/// One `bytes=` range (RFC 9110 §14.1.2) of a `size`-byte file, as inclusive offsets;
/// `None` when it cannot be served (several ranges, malformed, or past the end).
fn byte_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // The last N bytes.
        let n: u64 = b.parse().ok().filter(|&n| n > 0)?;
        return Some((size.saturating_sub(n), size - 1));
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        size - 1
    } else {
        b.parse::<u64>().ok()?.min(size - 1)
    };
    (start <= end).then_some((start, end))
}

fn acd(s: &AppState) -> Result<&crate::acd::actor::AcdHandle, (StatusCode, Json<Value>)> {
    s.acd
        .as_ref()
        .ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "no ACD configured"))
}

fn state_name(st: &AgentState) -> (&'static str, Option<&str>) {
    match st {
        AgentState::Break { reason } => (st.name(), Some(reason)),
        _ => (st.name(), None),
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
        "owes_disposition": a.owes_disposition.as_ref().map(|(call, queue)| json!({ "call": call.0, "queue": queue })),
    })
}

async fn agent(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(ext): Path<String>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    if !oversees(&s, &p, &[&ext]) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("agent {ext} is not yours to see"),
        ));
    }
    match acd(&s)?.agent(&ext).await {
        Some(a) => Ok(Json(agent_json(&ext, &a, Instant::now()))),
        None => Err(err(StatusCode::NOT_FOUND, format!("no agent {ext}"))),
    }
}

/// `GET /api/agents`: the agents the user oversees (a supervisor's wall), with their ACD
/// state; for an agent, themselves.
async fn agents(State(s): State<AppState>, headers: HeaderMap) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let handle = acd(&s)?;
    let now = Instant::now();
    let mut out = Vec::new();
    for ext in s.access.agents_of(&p.name) {
        if let Some(a) = handle.agent(&ext).await {
            out.push(agent_json(&ext, &a, now));
        }
    }
    Ok(Json(json!({ "agents": out })))
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
    let p = principal(&s, &headers).await?;
    if !oversees(&s, &p, &[&ext]) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("agent {ext} is not yours to change"),
        ));
    }
    let Json(change) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let handle = acd(&s)?;
    if handle.agent(&ext).await.is_none() {
        return Err(err(StatusCode::NOT_FOUND, format!("no agent {ext}")));
    }
    // A queue call's disposition comes before the next call (the queue has result codes).
    if change.state == "available"
        && let Some(a) = handle.agent(&ext).await
        && let Some((call, queue)) = a.owes_disposition
    {
        return Err(err(
            StatusCode::CONFLICT,
            format!(
                "record the disposition of call {} first ({})",
                call.0,
                s.dispositions.codes(Some(&queue)).join(", ")
            ),
        ));
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
    // Queue figures are for everybody on the floor (the agents' softphone shows them).
    principal(&s, &headers).await?;
    let Some(q) = acd(&s)?.queue(&name).await else {
        return Err(err(StatusCode::NOT_FOUND, format!("no queue {name}")));
    };
    let mut v = queue_json(&q, Instant::now());
    // Today (UTC) from the stored queue events.
    let now = crate::store::now_ms();
    let midnight = now - now.rem_euclid(crate::leads::DAY_MS);
    let threshold_s = s.service_levels.get(&name).copied().unwrap_or(20);
    let day = s
        .store
        .queue_figures(&name, midnight, i64::MAX, threshold_s as i64 * 1000)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["today"] = json!({
        "left": day.left,
        "answered": day.answered,
        "abandoned": day.abandoned,
        "short_abandons": day.abandoned_within,
        "service_level": day.service_level,
        "service_level_s": threshold_s,
    });
    Ok(Json(v))
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
    require_supervisor(&principal(&s, &headers).await?)?;
    let rows = s
        .store
        .voicemails(f.mailbox.as_deref(), f.unheard.unwrap_or(false))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "voicemails": rows })))
}

#[derive(Deserialize)]
struct Heard {
    /// Who listened: the logged-in user; only the API token (a script) names somebody.
    by: Option<String>,
}

async fn voicemail_heard(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<Heard>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    require_supervisor(&p)?;
    let Json(h) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let by = match h.by {
        Some(by) if p.name == crate::login::API_TOKEN_USER => by,
        _ => p.name,
    };
    match s.store.mark_voicemail_heard(id, &by).await {
        Ok(true) => Ok(Json(json!({ "id": id, "heard_by": by }))),
        Ok(false) => Err(err(StatusCode::NOT_FOUND, format!("no voicemail {id}"))),
        Err(e) => Err(err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

#[derive(Deserialize)]
struct HoldBody {
    hold: bool,
    reason: Option<String>,
}

/// `POST /api/recordings/{id}/legal-hold` with `{"hold": true, "reason": "..."}`: keeps a
/// recording whatever its retention (supervisors who may hear it, admins); `false` lifts it.
async fn legal_hold(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<HoldBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    require_supervisor(&p)?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let reason = b.reason.filter(|r| !r.trim().is_empty());
    if b.hold && reason.is_none() {
        return Err(err(StatusCode::BAD_REQUEST, "a legal hold needs a reason"));
    }
    let row = s
        .store
        .recording(id)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .filter(|r| may_hear(&s, &p, r))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no recording {id}")))?;
    let gone = || {
        err(
            StatusCode::GONE,
            format!("recording {id} was deleted by retention"),
        )
    };
    if row.deleted_at_ms.is_some() {
        return Err(gone());
    }
    let changed = s
        .store
        .set_legal_hold(id, b.hold, reason.as_deref())
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !changed {
        return Err(gone());
    }
    let action = if b.hold {
        "recording.legal_hold"
    } else {
        "recording.legal_hold_lifted"
    };
    audit(
        &s,
        &p,
        action,
        Some(&id.to_string()),
        reason.as_deref(),
        Some(from),
    )
    .await?;
    Ok(Json(
        json!({ "id": id, "legal_hold": b.hold, "reason": reason }),
    ))
}

#[derive(Deserialize)]
struct ModeBody {
    mode: String,
}

/// `POST /api/monitors/{id}/mode` with `{"mode": "listen"|"whisper"|"barge"}`: the supervisor
/// of monitoring call `id` (or an admin) switches mode in place, as keys 1-3 on the phone do.
async fn monitor_mode(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: Result<Json<ModeBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mode = crate::call::monitor::MonitorMode::parse(&b.mode).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            format!("mode {:?}: listen, whisper or barge", b.mode),
        )
    })?;
    let none = || err(StatusCode::NOT_FOUND, format!("no monitor session {id}"));
    let session = s
        .live
        .list()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.monitoring)
        .ok_or_else(none)?;
    if session.supervisor != p.name && !p.is_admin() {
        return Err(none());
    }
    let inbox = s.live.inbox(crate::call::CallKey(id)).ok_or_else(none)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    inbox
        .send(crate::call::actor::CallEvent::MonitorMode { mode, reply })
        .await
        .map_err(|_| none())?;
    match answer.await {
        Ok(true) => Ok(Json(json!({ "id": id, "mode": mode.as_str() }))),
        _ => Err(none()),
    }
}

#[derive(Deserialize)]
struct MonitorFilter {
    agent: Option<String>,
    supervisor: Option<String>,
}

/// `GET /api/monitor-sessions`: the audit log of listen/whisper/barge sessions, newest first:
/// admins see all, supervisors their own and those on their groups' agents.
async fn monitor_sessions(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<MonitorFilter>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    require_supervisor(&p)?;
    let rows: Vec<_> = s
        .store
        .monitor_sessions(f.agent.as_deref(), f.supervisor.as_deref())
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .into_iter()
        .filter(|r| r.supervisor == p.name || oversees(&s, &p, &[&r.agent]))
        .map(|r| {
            let modes: Value = serde_json::from_str(&r.modes).unwrap_or(Value::Null);
            json!({
                "id": r.id,
                "call_id": r.call_id,
                "monitored_call_id": r.monitored_call_id,
                "supervisor": r.supervisor,
                "agent": r.agent,
                "started_at_ms": r.started_at_ms,
                "ended_at_ms": r.ended_at_ms,
                "modes": modes,
                "connected": r.connected,
                "outcome": r.outcome,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": rows })))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_as_rfc_9110_reads_them() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=-5000", 1000), Some((0, 999)));
        assert_eq!(byte_range("bytes=990-2000", 1000), Some((990, 999)));
        for bad in [
            "bytes=1000-",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-0",
        ] {
            assert_eq!(byte_range(bad, 1000), None, "{bad}");
        }
        assert_eq!(byte_range("bytes=0-", 0), None);
    }
}
