//! Logging in to the API and who a request is from: `POST /api/login` gives a bearer token
//! for a session (`http.session_ttl_h`), `POST /api/logout` ends it, `GET /api/me` says who
//! it is, `POST /api/me/password` changes the password (ending every session of the user).
//! The configured `http.api_token` acts as an admin, for scripts. Failed logins are throttled
//! per user and per address, and logins, failures and password changes go to the audit log
//! (`GET /api/audit`, admins).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Role;
use crate::http::AppState;
use crate::users::{Principal, hash_password, new_token, token_digest, verify_password};

pub type ApiError = (StatusCode, Json<Value>);

pub fn err(code: StatusCode, msg: impl Into<String>) -> ApiError {
    (code, Json(json!({ "error": msg.into() })))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/me/password", post(change_password))
        .route("/api/audit", get(audit_log))
}

/// The name the configured API token acts under.
pub const API_TOKEN_USER: &str = "api-token";

/// The session cookie the consoles use (`HttpOnly`: no script of the page can read it).
pub const SESSION_COOKIE: &str = "cti_session";

/// The header a console sends its CSRF token in with every state-changing request.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The session token in the request's cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|t| !t.is_empty())
}

/// The CSRF token of a session: derived from its token (so nothing more is stored), and
/// useless without the cookie it belongs to.
pub fn csrf_token(session: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(format!("cti-csrf:{session}").as_bytes())[..16])
}

/// The `Set-Cookie` value of a session (`Secure` over HTTPS); `None` clears it.
fn session_set_cookie(token: Option<&str>, ttl: Duration, secure: bool) -> String {
    let (value, age) = match token {
        Some(t) => (t, ttl.as_secs()),
        None => ("", 0),
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The request's origin differs from the host it was sent to: a page of another site.
/// Browsers send `Origin` with every cross-site request that could change something and with
/// every WebSocket handshake; requests without one are not from a page of another site.
pub fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    !origin_host.eq_ignore_ascii_case(host)
}

/// Guards requests that a logged-in browser sends with its cookie: another site's page
/// gets 403 (checked by `Origin`), and a state-changing request (not GET, HEAD, OPTIONS)
/// must carry the session's CSRF token in `X-CSRF-Token`. Requests with a bearer token are
/// not affected (a browser never adds one by itself); logging in needs no token.
pub async fn csrf_guard(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let headers = req.headers();
    if bearer(headers).is_none()
        && let Some(session) = session_cookie(headers)
        && req.uri().path() != "/api/login"
    {
        if foreign_origin(headers) {
            return err(
                StatusCode::FORBIDDEN,
                "a request with this server's session cookie from another site's page",
            )
            .into_response();
        }
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !safe && !given.is_some_and(|g| same(g, &csrf_token(session))) {
            return err(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header (reload the page)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Constant-time comparison: tokens are passwords.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who the request is from: the configured API token (an admin) or a login session, by
/// bearer token or by the session cookie ([`csrf_guard`] has checked the cookie's requests).
pub async fn principal(s: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(given) = bearer(headers).or_else(|| session_cookie(headers)) else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "log in (POST /api/login) and send Authorization: Bearer <token>",
        ));
    };
    if let Some(token) = s.api_token.as_deref().filter(|t| !t.is_empty())
        && same(given, token)
    {
        return Ok(Principal {
            name: API_TOKEN_USER.into(),
            role: Role::Admin,
        });
    }
    let user = s
        .store
        .session_user(&token_digest(given))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "unknown or expired session"))?;
    Ok(Principal {
        role: user.role(),
        name: user.name,
    })
}

pub fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(err(StatusCode::FORBIDDEN, "admins only"))
    }
}

pub fn require_supervisor(p: &Principal) -> Result<(), ApiError> {
    if p.is_supervisor_or_admin() {
        Ok(())
    } else {
        Err(err(StatusCode::FORBIDDEN, "supervisors and admins only"))
    }
}

/// May `p` see this agent's (or these parties') calls and recordings?
pub fn oversees(s: &AppState, p: &Principal, parties: &[&str]) -> bool {
    p.is_admin() || parties.iter().any(|a| s.access.oversees(&p.name, a))
}

/// A failure of the server's own (the store), as a 500 with its text.
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Longest free text (a note, a place, a reason).
pub const MAX_TEXT: usize = 500;

/// An optional free text field trimmed (empty: none), or a 400 naming `what` when longer than
/// [`MAX_TEXT`].
pub fn optional_text(what: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    let v = v.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    if v.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{what}: {MAX_TEXT} characters at most"),
        ));
    }
    Ok(v)
}

/// Writes an audit entry; an entry that cannot be written refuses the access it records.
pub async fn audit(
    s: &AppState,
    p: &Principal,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
    source: Option<SocketAddr>,
) -> Result<(), ApiError> {
    let source = source.map(|a| a.ip().to_string());
    s.store
        .audit(&p.name, action, target, detail, source.as_deref())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, action, "audit log not written: access refused");
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written",
            )
        })
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(s): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    extensions: axum::http::Extensions,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let Json(l) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let addr = from.ip().to_string();
    let now = Instant::now();
    let held = s
        .throttle
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .check(&l.user, &addr, now);
    if let Err(wait) = held {
        tracing::warn!(user = %l.user, %addr, "login throttled");
        let wait = wait.as_secs().max(1);
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "error": format!("too many failed logins: try again in {wait} s"),
                "retry_after_s": wait,
            })),
        ));
    }
    let user = s
        .store
        .user(&l.user)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let ok = match user.clone() {
        Some(u) => {
            let password = l.password.clone();
            tokio::task::spawn_blocking(move || verify_password(&password, &u.password_hash))
                .await
                .unwrap_or(false)
        }
        None => {
            // As slow as a real check, so timing does not tell which names exist.
            let password = l.password.clone();
            let _ = tokio::task::spawn_blocking(move || hash_password(&password)).await;
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        s.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed(&l.user, &addr, now);
        let _ = s
            .store
            .audit(&l.user, "login_failed", None, None, Some(&addr))
            .await;
        tracing::info!(user = %l.user, %addr, "login failed");
        return Err(err(StatusCode::UNAUTHORIZED, "wrong user name or password"));
    };
    s.throttle
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .succeeded(&user.name);
    let token = new_token();
    let expires = crate::store::now_ms() + s.session_ttl.as_millis() as i64;
    s.store
        .create_session(&token_digest(&token), &user.name, expires, &addr)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let p = Principal {
        name: user.name.clone(),
        role: user.role(),
    };
    audit(&s, &p, "login", None, None, Some(from)).await?;
    tracing::info!(user = %p.name, role = p.role.as_str(), "logged in");
    // Browsers keep the session in an HttpOnly cookie; scripts use the token as a bearer.
    let cookie = session_set_cookie(
        Some(&token),
        s.session_ttl,
        crate::http::over_tls(&extensions),
    );
    Ok((
        [(axum::http::header::SET_COOKIE, cookie)],
        Json(json!({
            "csrf": csrf_token(&token),
            "token": token,
            "user": p.name,
            "role": p.role.as_str(),
            "expires_at_ms": expires,
        })),
    ))
}

async fn logout(
    State(s): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let p = principal(&s, &headers).await?;
    if p.name != API_TOKEN_USER
        && let Some(token) = bearer(&headers).or_else(|| session_cookie(&headers))
    {
        s.store
            .end_session(&token_digest(token))
            .await
            .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    let clear = session_set_cookie(None, s.session_ttl, crate::http::over_tls(&extensions));
    Ok((
        [(axum::http::header::SET_COOKIE, clear)],
        Json(json!({ "logged_out": p.name })),
    ))
}

async fn me(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let mut me = json!({
        "user": p.name,
        "role": p.role.as_str(),
        "queues": s.access.queues_of(&p.name),
    });
    // A page that was reloaded learns its CSRF token again here (its cookie came along).
    if bearer(&headers).is_none()
        && let Some(session) = session_cookie(&headers)
    {
        me["csrf"] = json!(csrf_token(session));
    }
    Ok(Json(me))
}

#[derive(Deserialize)]
struct PasswordChange {
    old: String,
    new: String,
}

/// Shortest password accepted.
const MIN_PASSWORD: usize = 8;

async fn change_password(
    State(s): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<PasswordChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(c) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let user = s
        .store
        .user(&p.name)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .ok_or_else(|| err(StatusCode::BAD_REQUEST, "the API token has no password"))?;
    if c.new.chars().count() < MIN_PASSWORD {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("the new password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    let (old, new, stored) = (c.old, c.new, user.password_hash);
    let hash = tokio::task::spawn_blocking(move || {
        verify_password(&old, &stored).then(|| hash_password(&new))
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .ok_or_else(|| err(StatusCode::FORBIDDEN, "the old password is wrong"))?;
    s.store
        .set_password(&p.name, &hash)
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    audit(&s, &p, "password_changed", Some(&p.name), None, Some(from)).await?;
    Ok(Json(json!({ "changed": true, "sessions_ended": true })))
}

#[derive(Deserialize)]
struct AuditFilter {
    actor: Option<String>,
    action: Option<String>,
}

async fn audit_log(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<AuditFilter>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    require_admin(&p)?;
    let rows = s
        .store
        .audit_log(f.actor.as_deref(), f.action.as_deref())
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "entries": rows })))
}

/// How long a session lasts, from the configuration.
pub fn session_ttl(hours: u64) -> Duration {
    Duration::from_secs(hours.max(1) * 3600)
}
