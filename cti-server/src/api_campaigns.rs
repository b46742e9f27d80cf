//! Outbound campaigns over REST ([`crate::campaign`], [`crate::store::campaigns`]), and the
//! pacer that dials progressive campaigns and settles every campaign's attempts.
//!
//! - `GET /api/campaigns`: the campaigns of the user's skill groups (admins all), with their
//!   leads counted by state, and which one the user has joined.
//! - `POST /api/campaigns` `{"name", "script", "mode": "preview"|"progressive", "skill",
//!   "retries", "retry_after_s", "calling_hours", "ends_at_ms"}` (the group's supervisor, an
//!   admin): a new campaign, paused.
//! - `GET /api/campaigns/{id}`: the campaign and its leads with their results.
//! - `GET /api/campaigns/{id}/report?format=json|csv|xlsx`: the campaign report, one row per
//!   lead: state, attempts, last outcome, result code, agent.
//! - `POST /api/campaigns/{id}/leads` `{"leads": [ids]}` or `{"grade", "source", "status",
//!   "owner"}`: adds leads (closed, C and invalid leads are left out).
//! - `POST /api/campaigns/{id}/state` `{"state": "running"|"paused"|"finished"}`.
//!
//! Making a campaign and changing its state go to the audit log.
//! - Preview, for the group's agents: `POST /api/campaigns/{id}/next` holds the next due lead
//!   for the agent (two minutes) and gives it with the script; `POST
//!   /api/campaigns/{id}/leads/{lead}/dial` places the call from the agent's console (the
//!   click-to-dial rules apply: calling hours, do-not-call); `POST .../skip` gives it back,
//!   due again after the retry spacing.
//! - Progressive: `POST /api/campaigns/{id}/join` and `/leave`. While joined, each time the
//!   agent is available with a free console phone, their last campaign call's result code is
//!   recorded and a few seconds have passed, the pacer calls the next due lead for them; the
//!   agent's console gets a `campaign_call` event with the lead and the script as it dials.
//!
//! Each attempt ends with its call record: connected (the agent's disposition is the result),
//! or busy, no answer, declined, failed: tried again `retries` times, `retry_after_s` apart,
//! then exhausted. A number on the do-not-call list is excluded. Campaign calls run only
//! inside the campaign's calling hours (else the server's `[dialing]` hours) and before its
//! deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::campaign::{AgentView, Mode, Retry};
use crate::dial::DialRefusal;
use crate::http::AppState;
use crate::ivr::hours::{BusinessHours, PeriodSpec};
use crate::login::{ApiError, audit, err, internal, principal};
use crate::reports::{Cell, Table};
use crate::store::campaigns::{CampaignRow, CreateError, LeadFilter, NewCampaign};
use crate::users::Principal;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/campaigns", get(list).post(create))
        .route("/api/campaigns/{id}", get(read))
        .route("/api/campaigns/{id}/report", get(report))
        .route("/api/campaigns/{id}/leads", post(add_leads))
        .route("/api/campaigns/{id}/state", post(set_state))
        .route("/api/campaigns/{id}/next", post(next))
        .route("/api/campaigns/{id}/leads/{lead}/dial", post(dial))
        .route("/api/campaigns/{id}/leads/{lead}/skip", post(skip))
        .route("/api/campaigns/{id}/join", post(join))
        .route("/api/campaigns/{id}/leave", post(leave))
}

/// How long a previewed lead is held for its agent.
const PREVIEW_HOLD_MS: i64 = 120_000;
/// A placed call whose record has not come after this long is taken as failed.
const LOST_AFTER_MS: i64 = 4 * 3_600_000;

/// The campaigns' runtime: who has joined which progressive campaign, and the calendar the
/// campaigns' calling hours are read in.
pub struct Campaigns {
    joined: Mutex<HashMap<String, i64>>,
    time_zone: String,
    holidays: Vec<String>,
}

impl Campaigns {
    pub fn new(dialing: &crate::config::DialingConfig) -> Campaigns {
        Campaigns {
            joined: Mutex::new(HashMap::new()),
            time_zone: dialing.time_zone.clone(),
            holidays: dialing.holidays.clone(),
        }
    }

    fn joined(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.joined.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The campaign's own calling hours, checked.
    fn hours(&self, specs: &[PeriodSpec]) -> Result<BusinessHours, String> {
        let (hours, problems) = BusinessHours::from_spec(&self.time_zone, specs, &self.holidays);
        match problems.first() {
            None => Ok(hours),
            Some(p) => Err(format!(
                "calling_hours: {}",
                p.replace("`periods", "`calling_hours")
            )),
        }
    }

    /// Why the campaign may not call now, if it may not: not running, past its deadline,
    /// outside its calling hours.
    fn closed(&self, c: &CampaignRow, now: i64) -> Option<String> {
        if c.state != "running" {
            return Some(format!("campaign {:?} is {}", c.name, c.state));
        }
        if c.ends_at_ms.is_some_and(|end| now >= end) {
            return Some(format!("campaign {:?} is past its deadline", c.name));
        }
        let specs: Vec<PeriodSpec> = c
            .calling_hours
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if specs.is_empty() {
            return None;
        }
        match self.hours(&specs) {
            Ok(h) if h.is_open(SystemTime::now()) => None,
            Ok(_) => Some(format!(
                "outside campaign {:?}'s calling hours: {}",
                c.name,
                specs
                    .iter()
                    .map(|p| format!("{} {}-{}", p.days.join(","), p.from, p.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => Some(e),
        }
    }
}

fn now_ms() -> i64 {
    crate::store::now_ms()
}

/// Runs the campaign: its group's supervisor, or an admin.
fn runs(s: &AppState, p: &Principal, skill: &str) -> bool {
    p.is_admin() || s.access.runs(&p.name, skill)
}

/// The campaign if the user may see it: it is their group's, or they run it.
async fn visible(s: &AppState, p: &Principal, id: i64) -> Result<CampaignRow, ApiError> {
    s.store
        .campaign(id)
        .await
        .map_err(internal)?
        .filter(|c| runs(s, p, &c.skill) || s.access.works_in(&p.name, &c.skill))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no campaign {id}")))
}

async fn managed(s: &AppState, p: &Principal, id: i64) -> Result<CampaignRow, ApiError> {
    let c = visible(s, p, id).await?;
    if !runs(s, p, &c.skill) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "the campaign's group supervisor or an admin manages it",
        ));
    }
    Ok(c)
}

/// The campaign for one of its agents.
async fn worked(s: &AppState, p: &Principal, id: i64) -> Result<CampaignRow, ApiError> {
    let c = visible(s, p, id).await?;
    if !s.access.works_in(&p.name, &c.skill) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("campaign {:?} is worked by the {} group", c.name, c.skill),
        ));
    }
    Ok(c)
}

fn campaign_json(s: &AppState, p: &Principal, c: &CampaignRow) -> Value {
    let mut v = json!(c);
    let joined = s.campaigns.joined().get(&p.name) == Some(&c.id);
    v["joined"] = json!(joined);
    v
}

async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let all = s.store.campaigns().await.map_err(internal)?;
    let mine: Vec<Value> = all
        .iter()
        .filter(|c| runs(&s, &p, &c.skill) || s.access.works_in(&p.name, &c.skill))
        .map(|c| campaign_json(&s, &p, c))
        .collect();
    Ok(Json(json!({ "campaigns": mine })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    script: String,
    mode: String,
    skill: String,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_retry_after")]
    retry_after_s: u32,
    #[serde(default)]
    calling_hours: Vec<PeriodSpec>,
    #[serde(default)]
    ends_at_ms: Option<i64>,
}

fn default_retries() -> u32 {
    2
}

fn default_retry_after() -> u32 {
    3600
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad = |m: String| err(StatusCode::BAD_REQUEST, m);
    let name = b.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("name: 1 to 100 characters".into()));
    }
    if b.script.chars().count() > 20_000 {
        return Err(bad("script: 20,000 characters at most".into()));
    }
    let mode = Mode::parse(&b.mode)
        .ok_or_else(|| bad(format!("mode {:?}: preview or progressive", b.mode)))?;
    if !s.access.skills().contains(&b.skill) {
        return Err(bad(format!("skill {:?}: no such skill group", b.skill)));
    }
    if !runs(&s, &p, &b.skill) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!(
                "the {} group's supervisor or an admin makes its campaigns",
                b.skill
            ),
        ));
    }
    if b.retries > 20 {
        return Err(bad("retries: 20 at most".into()));
    }
    if b.retry_after_s == 0 {
        return Err(bad("retry_after_s: at least 1".into()));
    }
    let calling_hours = if b.calling_hours.is_empty() {
        None
    } else {
        s.campaigns.hours(&b.calling_hours).map_err(bad)?;
        Some(serde_json::to_string(&b.calling_hours).map_err(internal)?)
    };
    let c = NewCampaign {
        name,
        script: b.script,
        mode,
        skill: b.skill,
        retry: Retry {
            retries: b.retries,
            spacing_ms: i64::from(b.retry_after_s) * 1000,
        },
        calling_hours,
        ends_at_ms: b.ends_at_ms,
    };
    match s.store.create_campaign(&c, &p.name, now_ms()).await {
        Ok(row) => {
            let detail = format!(
                "{} campaign for {}, {} retries {} s apart",
                row.mode, row.skill, row.retries, row.retry_after_s
            );
            let target = format!("campaign {} {:?}", row.id, row.name);
            audit(
                &s,
                &p,
                "campaign_created",
                Some(&target),
                Some(&detail),
                None,
            )
            .await?;
            Ok((StatusCode::CREATED, Json(campaign_json(&s, &p, &row))))
        }
        Err(CreateError::NameTaken) => Err(err(
            StatusCode::CONFLICT,
            format!("a campaign is called {:?} already", c.name),
        )),
        Err(CreateError::Store(e)) => Err(internal(e)),
    }
}

async fn read(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let c = managed(&s, &p, id).await?;
    let leads = s.store.campaign_leads(id).await.map_err(internal)?;
    let mut v = campaign_json(&s, &p, &c);
    v["leads_list"] = json!(leads);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct Format {
    format: Option<String>,
}

async fn report(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<Format>,
) -> Result<Response, ApiError> {
    let p = principal(&s, &headers).await?;
    let c = managed(&s, &p, id).await?;
    let leads = s.store.campaign_leads(id).await.map_err(internal)?;
    let text = |v: &Option<String>| v.clone().map_or(Cell::Empty, Cell::Text);
    let rows = leads
        .iter()
        .map(|l| {
            vec![
                Cell::Int(l.lead_id),
                Cell::Text(l.lead_name.clone()),
                text(&l.phone),
                Cell::Text(l.state.clone()),
                Cell::Int(l.attempts),
                text(&l.last_outcome),
                text(&l.result),
                text(&l.agent),
                l.call_id.map_or(Cell::Empty, Cell::Int),
            ]
        })
        .collect();
    let table = Table {
        title: format!(
            "Campaign {}: {} leads, {} reached, {} exhausted, {} excluded, {} waiting, {} attempts",
            c.name, c.leads, c.reached, c.exhausted, c.excluded, c.waiting, c.attempts
        ),
        columns: vec![
            "lead",
            "lead_name",
            "phone",
            "state",
            "attempts",
            "last_outcome",
            "result",
            "agent",
            "last_call",
        ],
        rows,
    };
    let file: String = c
        .name
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
        .collect();
    crate::reports::render(&table, q.format.as_deref(), &format!("campaign-{file}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadsBody {
    #[serde(default)]
    leads: Option<Vec<i64>>,
    #[serde(default)]
    grade: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

async fn add_leads(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<LeadsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let c = managed(&s, &p, id).await?;
    if c.state == "finished" {
        return Err(err(StatusCode::CONFLICT, "the campaign is finished"));
    }
    let filter = LeadFilter {
        ids: b.leads,
        grade: b.grade,
        source: b.source,
        status: b.status,
        owner: b.owner,
    };
    if filter == LeadFilter::default() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "name the leads (`leads`: ids) or a filter (grade, source, status, owner)",
        ));
    }
    let (added, already) = s
        .store
        .add_campaign_leads(id, &filter, now_ms())
        .await
        .map_err(internal)?;
    Ok(Json(json!({ "added": added, "already": already })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

async fn set_state(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<StateBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(b) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    managed(&s, &p, id).await?;
    if !crate::campaign::STATES.contains(&b.state.as_str()) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("state {:?}: running, paused or finished", b.state),
        ));
    }
    if !s
        .store
        .set_campaign_state(id, &b.state)
        .await
        .map_err(internal)?
    {
        return Err(err(StatusCode::CONFLICT, "the campaign is finished"));
    }
    if b.state == "finished" {
        s.campaigns.joined().retain(|_, c| *c != id);
    }
    let target = format!("campaign {id}");
    audit(
        &s,
        &p,
        "campaign_state",
        Some(&target),
        Some(&b.state),
        None,
    )
    .await?;
    let c = managed(&s, &p, id).await?;
    Ok(Json(campaign_json(&s, &p, &c)))
}

/// `POST /api/campaigns/{id}/next`: the lead to preview, held for the agent.
async fn next(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let c = worked(&s, &p, id).await?;
    if c.mode != Mode::Preview.as_str() {
        return Err(err(
            StatusCode::CONFLICT,
            "a progressive campaign dials for its agents: join it",
        ));
    }
    let now = now_ms();
    if let Some(why) = s.campaigns.closed(&c, now) {
        return Err(err(StatusCode::CONFLICT, why));
    }
    if let Some((other, lead, _)) = s
        .store
        .agent_campaign_lead(&p.name)
        .await
        .map_err(internal)?
        .filter(|(campaign, _, state)| *campaign != id || state == "calling")
    {
        return Err(err(
            StatusCode::CONFLICT,
            format!("finish lead {lead} of campaign {other} first"),
        ));
    }
    let lead = s
        .store
        .offer_campaign_lead(id, &p.name, now, now + PREVIEW_HOLD_MS)
        .await
        .map_err(internal)?;
    Ok(Json(json!({
        "campaign": id,
        "name": c.name,
        "script": c.script,
        "lead": lead,
    })))
}

/// A refusal that takes the lead out of the campaign: (outcome, why).
fn excluding(r: &DialRefusal) -> Option<&'static str> {
    match r {
        DialRefusal::DoNotCall(_) => Some("do_not_call"),
        DialRefusal::NoNumber | DialRefusal::BadNumber(_) => Some("no_number"),
        _ => None,
    }
}

/// Places the call to a lead offered to `agent`; on a refusal that excludes the lead it is
/// taken out, on another it stays offered (preview: the agent may try again) or goes back.
async fn place(
    s: &AppState,
    agent: &str,
    campaign: i64,
    lead: i64,
    give_back_ms: Option<i64>,
) -> Result<crate::call::CallKey, DialRefusal> {
    let console = s
        .console
        .as_ref()
        .ok_or_else(|| DialRefusal::Unavailable("no softphones on this server".into()))?;
    let placed = console
        .place(agent, None, Some(lead), crate::softphone::CAMPAIGN)
        .await;
    let now = now_ms();
    let store_err = |e: crate::store::StoreError| DialRefusal::Unavailable(e.to_string());
    match &placed {
        Ok(key) => {
            s.store
                .campaign_lead_calling(campaign, lead, agent, key.0 as i64, now)
                .await
                .map_err(store_err)?;
        }
        Err(r) => {
            if let Some(outcome) = excluding(r) {
                s.store
                    .release_campaign_lead(campaign, lead, agent, Some(outcome), now, now)
                    .await
                    .map_err(store_err)?;
            } else if let Some(back) = give_back_ms {
                s.store
                    .release_campaign_lead(campaign, lead, agent, None, now + back, now)
                    .await
                    .map_err(store_err)?;
            }
        }
    }
    placed
}

async fn dial(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, lead)): Path<(i64, i64)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let c = worked(&s, &p, id).await?;
    if let Some(why) = s.campaigns.closed(&c, now_ms()) {
        return Err(err(StatusCode::CONFLICT, why));
    }
    let held = s
        .store
        .campaign_lead(id, lead)
        .await
        .map_err(internal)?
        .filter(|l| l.state == "offered" && l.agent.as_deref() == Some(p.name.as_str()));
    if held.is_none() {
        return Err(err(
            StatusCode::CONFLICT,
            format!("lead {lead} is not offered to you in this campaign: ask for the next one"),
        ));
    }
    match place(&s, &p.name, id, lead, None).await {
        Ok(key) => Ok((StatusCode::CREATED, Json(json!({ "call": key.0 })))),
        Err(r) => Err(err(
            StatusCode::from_u16(r.status()).unwrap_or(StatusCode::CONFLICT),
            match excluding(&r) {
                Some(_) => format!("{}; the lead leaves the campaign", r.message()),
                None => r.message(),
            },
        )),
    }
}

async fn skip(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, lead)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let c = worked(&s, &p, id).await?;
    let now = now_ms();
    let back = now + c.retry_after_s.saturating_mul(1000);
    if !s
        .store
        .release_campaign_lead(id, lead, &p.name, None, back, now)
        .await
        .map_err(internal)?
    {
        return Err(err(
            StatusCode::CONFLICT,
            format!("lead {lead} is not offered to you in this campaign"),
        ));
    }
    Ok(Json(json!({ "lead": lead, "next_at_ms": back })))
}

async fn join(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let c = worked(&s, &p, id).await?;
    if c.mode != Mode::Progressive.as_str() {
        return Err(err(
            StatusCode::CONFLICT,
            "a preview campaign is worked lead by lead: ask for the next one",
        ));
    }
    if c.state == "finished" {
        return Err(err(StatusCode::CONFLICT, "the campaign is finished"));
    }
    s.campaigns.joined().insert(p.name.clone(), id);
    Ok(Json(campaign_json(&s, &p, &c)))
}

async fn leave(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let p = principal(&s, &headers).await?;
    let c = visible(&s, &p, id).await?;
    {
        let mut joined = s.campaigns.joined();
        if joined.get(&p.name) == Some(&id) {
            joined.remove(&p.name);
        }
    }
    Ok(Json(campaign_json(&s, &p, &c)))
}

/// The pacer: every second, settles the attempts whose calls ended, then gives each joined
/// agent who is free their next progressive call. It stops when the server shuts down (and
/// lets go of the handles it holds, so the call plane and the record writer can finish).
pub async fn run_pacer(s: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Err(e) = pace(&s).await {
            tracing::warn!("campaign pacer: {e}");
        }
    }
}

async fn pace(s: &AppState) -> Result<(), crate::store::StoreError> {
    let now = now_ms();
    for a in s.store.settle_campaign_calls(now, LOST_AFTER_MS).await? {
        if let Some(agent) = &a.agent {
            s.cti.publish(
                agent,
                json!({
                    "type": "campaign_attempt", "campaign": a.campaign, "lead": a.lead,
                    "outcome": a.outcome.as_str(),
                }),
            );
        }
    }
    let joined: Vec<(String, i64)> = s
        .campaigns
        .joined()
        .iter()
        .map(|(a, c)| (a.clone(), *c))
        .collect();
    for (agent, id) in joined {
        let Some(c) = s.store.campaign(id).await? else {
            s.campaigns.joined().remove(&agent);
            continue;
        };
        if c.state == "finished" {
            s.campaigns.joined().remove(&agent);
            continue;
        }
        if s.campaigns.closed(&c, now).is_some() {
            continue;
        }
        let view = agent_view(s, &agent).await?;
        if !crate::campaign::may_dial_next(&view, now) {
            continue;
        }
        let Some(lead) = s
            .store
            .offer_campaign_lead(id, &agent, now, now + PREVIEW_HOLD_MS)
            .await?
        else {
            continue;
        };
        s.cti.publish(
            &agent,
            json!({
                "type": "campaign_call", "campaign": id, "name": c.name, "script": c.script,
                "lead": lead,
            }),
        );
        if let Err(r) = place(s, &agent, id, lead.lead_id, Some(60_000)).await {
            tracing::info!(
                agent,
                campaign = id,
                lead = lead.lead_id,
                "campaign call not placed: {}",
                r.message()
            );
            s.cti.publish(
                &agent,
                json!({
                    "type": "campaign_attempt", "campaign": id, "lead": lead.lead_id,
                    "outcome": excluding(&r).unwrap_or("not_placed"), "error": r.message(),
                }),
            );
        }
    }
    Ok(())
}

async fn agent_view(s: &AppState, agent: &str) -> Result<AgentView, crate::store::StoreError> {
    let status = match &s.acd {
        Some(acd) => acd.agent(agent).await,
        None => None,
    };
    let phone_up = s
        .console
        .as_ref()
        .is_some_and(|c| c.phones.target(agent).is_some());
    let (owes_result, last_ended_ms) = s.store.agent_campaign_wrap_up(agent).await?;
    Ok(AgentView {
        available: status
            .as_ref()
            .is_some_and(|st| st.state == crate::acd::AgentState::Available),
        lines_in_use: status.as_ref().map_or(0, |st| st.lines_in_use),
        phone_up,
        has_campaign_lead: s.store.agent_campaign_lead(agent).await?.is_some(),
        owes_result,
        last_ended_ms,
    })
}
