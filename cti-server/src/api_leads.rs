//! The lead API: create (phones in E.164, duplicates refused), search, read with phones and
//! timeline, change (every change on the timeline), record a contact (first contact, next
//! follow-up from the grade's cadence or the date agreed with the customer), notes, and the
//! agent's work list. Agents see their own leads and unowned ones; supervisors also their
//! groups' agents' leads; admins all. Only supervisors and admins hand a lead to somebody
//! else.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::leads::{Grade, SOURCES, STATUSES, e164, first_contact_due};
use crate::login::{ApiError, err, internal, oversees, principal};
use crate::store::crm::{CreateError, DuplicateMode, LeadChanges, LeadDraft, LeadRow};
use crate::users::Principal;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/leads", get(search).post(create))
        .route(
            "/api/leads/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/leads/export.csv", get(export))
        .route("/api/leads/export.xlsx", get(export_xlsx))
        .route("/api/leads/{id}", get(read).patch(change))
        .route("/api/leads/{id}/contacts", post(contact))
        .route("/api/leads/{id}/notes", post(note))
        .route("/api/worklist", get(worklist))
}

/// May `p` see (and work) this lead? Unowned leads are everybody's to pick up.
pub(crate) fn may_see(s: &AppState, p: &Principal, lead: &LeadRow) -> bool {
    match lead.owner_agent.as_deref() {
        None => true,
        Some(owner) => oversees(s, p, &[owner]),
    }
}

/// The lead, if `p` may see it (404 otherwise: other people's ids stay hidden).
async fn visible(s: &AppState, p: &Principal, id: i64) -> Result<LeadRow, ApiError> {
    s.store
        .lead(id)
        .await
        .map_err(internal)?
        .filter(|l| may_see(s, p, l))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no lead {id}")))
}

fn check_grade(g: &Option<String>) -> Result<Option<String>, ApiError> {
    match g.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        None => Ok(None),
        Some(g) => Grade::parse(g)
            .map(|g| Some(g.as_str().to_string()))
            .ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!("grade {g:?}: H, A, B, C or invalid"),
                )
            }),
    }
}

fn check_in(what: &str, v: &Option<String>, allowed: &[&str]) -> Result<(), ApiError> {
    match v {
        Some(x) if !allowed.contains(&x.as_str()) => Err(err(
            StatusCode::BAD_REQUEST,
            format!("{what} {x:?}: one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn check_custom(c: &Option<Value>) -> Result<(), ApiError> {
    match c {
        Some(v) if !v.is_object() => Err(err(
            StatusCode::BAD_REQUEST,
            "custom: an object of field name to value",
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct NewLead {
    name: String,
    #[serde(default)]
    phones: Vec<String>,
    email: Option<String>,
    company: Option<String>,
    source: Option<String>,
    grade: Option<String>,
    owner: Option<String>,
    customer_no: Option<String>,
    product: Option<String>,
    custom: Option<Value>,
}

/// An API error as status and message (an import row's rejection).
fn reason(e: ApiError) -> (StatusCode, String) {
    let msg = e.1["error"].as_str().unwrap_or_default().to_string();
    (e.0, msg)
}

/// Checks a new lead as `p` would create it: phones to E.164, e-mail, grade, source,
/// custom fields, owner. The error: status and what is wrong.
fn to_draft(s: &AppState, p: &Principal, n: NewLead) -> Result<LeadDraft, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let name = n.name.trim().to_string();
    if name.is_empty() {
        return Err(bad("a lead needs a name".into()));
    }
    let mut phones = Vec::new();
    for raw in n.phones.iter().filter(|p| !p.trim().is_empty()) {
        let phone = e164(raw, &s.leads.default_country)
            .ok_or_else(|| bad(format!("phone {raw:?} is not a phone number")))?;
        if !phones.contains(&phone) {
            phones.push(phone);
        }
    }
    let email = n
        .email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if let Some(e) = &email
        && (!e.contains('@') || e.starts_with('@') || e.ends_with('@'))
    {
        return Err(bad(format!("e-mail {e:?} is not an address")));
    }
    if phones.is_empty() && email.is_none() {
        return Err(bad("a lead needs a phone or an e-mail address".into()));
    }
    let grade = check_grade(&n.grade).map_err(reason)?;
    let source = n
        .source
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty());
    check_in("source", &source, SOURCES).map_err(reason)?;
    check_custom(&n.custom).map_err(reason)?;
    // An agent's new lead is theirs (first contact owns it); only supervisors and admins
    // give one to somebody else.
    let owner = match n
        .owner
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
    {
        Some(o) if o != p.name && !p.is_supervisor_or_admin() => {
            return Err((
                StatusCode::FORBIDDEN,
                "agents create leads for themselves".into(),
            ));
        }
        Some(o) if !oversees(s, p, &[&o]) || s.access.role(&o).is_none() => {
            return Err(bad(format!("owner {o:?}: not one of your agents")));
        }
        Some(o) => Some(o),
        None if p.is_supervisor_or_admin() => None,
        None => Some(p.name.clone()),
    };
    let now = crate::store::now_ms();
    Ok(LeadDraft {
        name,
        company: n.company.filter(|c| !c.trim().is_empty()),
        email,
        next_follow_up_ms: s
            .leads
            .cadence_days
            .next_follow_up(grade.as_deref().and_then(Grade::parse), now),
        first_contact_due_ms: first_contact_due(source.as_deref(), now),
        grade,
        source,
        owner_agent: owner,
        customer_no: n.customer_no.filter(|c| !c.trim().is_empty()),
        product: n.product.filter(|c| !c.trim().is_empty()),
        custom: n.custom,
        phones,
    })
}

/// `POST /api/leads`: 201 with the id; 400 naming what is wrong; 409 with the lead that
/// has one of the phones already.
async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewLead>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = principal(&s, &headers).await?;
    let Json(n) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let draft = to_draft(&s, &p, n).map_err(|(code, m)| err(code, m))?;
    match s.store.create_lead(&draft, &p.name).await {
        Ok(id) => Ok((StatusCode::CREATED, Json(json!({ "id": id })))),
        Err(CreateError::Duplicate { lead, phone }) => Err((
            StatusCode::CONFLICT,
            Json(json!({
                "error": format!("phone {phone} belongs to lead {lead} already"),
                "lead": lead,
            })),
        )),
        Err(CreateError::Store(e)) => Err(internal(e)),
    }
}

#[derive(Deserialize)]
struct Import {
    /// The file: a header row, then one lead a row (RFC 4180 quoting; `,` or `;`).
    #[serde(default)]
    csv: Option<String>,
    /// Or an XLSX workbook, base64: its first sheet, a header row, then one lead a row.
    #[serde(default)]
    xlsx: Option<String>,
    /// Lead field -> the file's column (`phones`: a list of columns); unset fields are
    /// looked for under their own name.
    #[serde(default)]
    columns: std::collections::HashMap<String, Value>,
    /// `skip` (default), `merge` or `add`.
    duplicates: Option<String>,
    /// For rows without one.
    source: Option<String>,
    owner: Option<String>,
}

/// The rows of an import's file as text: its header and each record with its line (CSV)
/// or row (XLSX) number. A file that cannot be read is a 400 naming where.
#[allow(clippy::type_complexity)]
fn table_of(im: &Import) -> Result<(Vec<String>, Vec<(usize, Vec<String>)>), ApiError> {
    let bad = |m: String| err(StatusCode::BAD_REQUEST, m);
    match (&im.csv, &im.xlsx) {
        (Some(csv), None) => {
            let first_line = csv.lines().next().unwrap_or_default();
            let delimiter = if first_line.matches(';').count() > first_line.matches(',').count() {
                b';'
            } else {
                b','
            };
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(csv.as_bytes());
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| bad(format!("the header row: {e}")))?
                .iter()
                .map(str::to_string)
                .collect();
            let mut records = Vec::new();
            for (i, rec) in reader.records().enumerate() {
                let line = i + 2;
                let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
                records.push((line, rec.iter().map(str::to_string).collect()));
            }
            Ok((header, records))
        }
        (None, Some(b64)) => {
            use base64::Engine;
            use calamine::Reader;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("xlsx: not base64 ({e})")))?;
            let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes))
                .map_err(|e| bad(format!("xlsx: not an XLSX workbook ({e})")))?;
            let sheet = book
                .worksheet_range_at(0)
                .ok_or_else(|| bad("xlsx: the workbook has no sheet".into()))?
                .map_err(|e| bad(format!("xlsx: the first sheet cannot be read ({e})")))?;
            let text = |c: &calamine::Data| match c {
                // Phone numbers typed as numbers come as floats: no ".0".
                calamine::Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                    format!("{}", *f as i64)
                }
                other => other.to_string(),
            };
            let start_row = sheet.start().map_or(0, |(r, _)| r as usize);
            let mut rows = sheet.rows();
            let header: Vec<String> = rows
                .next()
                .ok_or_else(|| bad("xlsx: the first sheet is empty".into()))?
                .iter()
                .map(|c| text(c).trim().to_string())
                .collect();
            let records = rows
                .enumerate()
                .map(|(i, r)| (start_row + i + 2, r.iter().map(text).collect::<Vec<_>>()))
                .filter(|(_, r)| r.iter().any(|v| !v.trim().is_empty()))
                .collect();
            Ok((header, records))
        }
        (Some(_), Some(_)) => Err(bad("send the file as csv or as xlsx, not both".into())),
        (None, None) => Err(bad("no file: csv (text) or xlsx (base64)".into())),
    }
}

/// Largest import body (about 100,000 rows).
pub const MAX_IMPORT_BYTES: usize = 64 << 20;

/// `POST /api/leads/import` (supervisors, admins): imports a CSV file with a column mapping.
/// Rows that cannot be leads are rejected with their line and reason; duplicates (by
/// phone, in the database or earlier in the file) are skipped, merged or added; the rest go
/// in in one transaction, so an error leaves nothing half-imported.
async fn import(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Import>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    crate::login::require_supervisor(&p)?;
    let Json(im) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mode = match im.duplicates.as_deref().unwrap_or("skip") {
        "skip" => DuplicateMode::Skip,
        "merge" => DuplicateMode::Merge,
        "add" => DuplicateMode::Add,
        other => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("duplicates {other:?}: skip, merge or add"),
            ));
        }
    };
    let (header, records) = table_of(&im)?;
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    // Field -> column indexes.
    let mut map: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for field in [
        "name",
        "phones",
        "email",
        "company",
        "grade",
        "source",
        "owner",
        "product",
        "customer_no",
    ] {
        let wanted: Vec<String> = match im.columns.get(field) {
            Some(Value::String(c)) => vec![c.clone()],
            Some(Value::Array(cs)) => cs
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("columns.{field}: a column name or a list"),
                ));
            }
            None if field == "phones" => ["phones", "phone"]
                .into_iter()
                .filter(|c| column(c).is_some())
                .map(str::to_string)
                .collect(),
            None => column(field)
                .map(|_| vec![field.to_string()])
                .unwrap_or_default(),
        };
        let mut idx = Vec::new();
        for c in &wanted {
            let i = column(c).ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!("columns.{field}: no column {c:?} in the file"),
                )
            })?;
            idx.push(i);
        }
        map.insert(field, idx);
    }
    if map["name"].is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "no name column (map one with columns.name)",
        ));
    }
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    for (line, rec) in records {
        let get = |f: &str| {
            map[f]
                .first()
                .and_then(|&c| rec.get(c))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let n = NewLead {
            name: get("name").unwrap_or_default(),
            phones: map["phones"]
                .iter()
                .filter_map(|&c| rec.get(c))
                .flat_map(|v| v.split('|'))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect(),
            email: get("email"),
            company: get("company"),
            source: get("source").or_else(|| im.source.clone()),
            grade: get("grade"),
            owner: get("owner").or_else(|| im.owner.clone()),
            customer_no: get("customer_no"),
            product: get("product"),
            custom: None,
        };
        match to_draft(&s, &p, n) {
            Ok(d) => rows.push((line, d)),
            Err((_, reason)) => rejected.push(json!({ "line": line, "reason": reason })),
        }
    }
    let report = s
        .store
        .import_leads(&rows, mode, &p.name)
        .await
        .map_err(internal)?;
    tracing::info!(
        created = report.created.len(),
        merged = report.merged.len(),
        skipped = report.skipped.len(),
        rejected = rejected.len(),
        "leads imported"
    );
    Ok(Json(json!({
        "created": report.created.len(),
        "merged": report.merged.len(),
        "skipped": report.skipped,
        "rejected": rejected,
        "lead_ids": report.created,
    })))
}

/// `GET /api/leads/export.csv`: the leads the user may see, as CSV (phones joined by `|`).
async fn export(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let table = leads_table(&s, &headers).await?;
    let body = table.to_csv().map_err(internal)?;
    Ok(crate::reports::download(
        body,
        "text/csv; charset=utf-8",
        "leads.csv",
    ))
}

/// `GET /api/leads/export.xlsx`: the same as an XLSX workbook.
async fn export_xlsx(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let table = leads_table(&s, &headers).await?;
    let body = table.to_xlsx().map_err(internal)?;
    Ok(crate::reports::download(
        body,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "leads.xlsx",
    ))
}

/// The leads the user may see, one row each (phones joined with `|`).
async fn leads_table(s: &AppState, headers: &HeaderMap) -> Result<crate::reports::Table, ApiError> {
    use crate::reports::Cell;
    let p = principal(s, headers).await?;
    let leads: Vec<LeadRow> = s
        .store
        .all_leads()
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|l| may_see(s, &p, l))
        .collect();
    let text = |v: &Option<String>| v.clone().map_or(Cell::Empty, Cell::Text);
    let num = |v: Option<i64>| v.map_or(Cell::Empty, Cell::Int);
    let mut rows = Vec::with_capacity(leads.len());
    for l in &leads {
        let phones: Vec<String> = s
            .store
            .lead_phones(l.id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|p| p.phone)
            .collect();
        rows.push(vec![
            Cell::Int(l.id),
            Cell::Text(l.name.clone()),
            text(&l.company),
            text(&l.email),
            Cell::Text(phones.join("|")),
            text(&l.grade),
            Cell::Text(l.status.clone()),
            text(&l.source),
            text(&l.owner_agent),
            text(&l.product),
            text(&l.customer_no),
            num(l.next_follow_up_ms),
            num(l.first_contact_due_ms),
            num(l.first_contact_at_ms),
            Cell::Int(l.created_at_ms),
        ]);
    }
    Ok(crate::reports::Table {
        title: "Leads".into(),
        columns: vec![
            "id",
            "name",
            "company",
            "email",
            "phones",
            "grade",
            "status",
            "source",
            "owner",
            "product",
            "customer_no",
            "next_follow_up_ms",
            "first_contact_due_ms",
            "first_contact_at_ms",
            "created_at_ms",
        ],
        rows,
    })
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    grade: Option<String>,
    status: Option<String>,
}

/// `GET /api/leads?q=&grade=&status=`: the leads the user may see, newest first.
async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let grade = check_grade(&q.grade)?;
    let rows: Vec<LeadRow> = s
        .store
        .search_leads(
            q.q.as_deref().filter(|q| !q.trim().is_empty()),
            grade.as_deref(),
            q.status.as_deref(),
        )
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|l| may_see(&s, &p, l))
        .collect();
    Ok(Json(
        json!({ "leads": rows.iter().map(lead_json).collect::<Vec<_>>() }),
    ))
}

fn lead_json(l: &LeadRow) -> Value {
    let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        let custom = l
            .custom
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .unwrap_or_else(|| json!({}));
        o.insert("custom".into(), custom);
    }
    v
}

/// `GET /api/leads/{id}`: the lead, its phones and its timeline.
async fn read(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let lead = visible(&s, &p, id).await?;
    // A hot-lead report whose review time is over is accepted before the timeline is read.
    s.store
        .settle_hot_leads(crate::store::now_ms())
        .await
        .map_err(internal)?;
    let phones = s.store.lead_phones(id).await.map_err(internal)?;
    let events = s.store.lead_events(id).await.map_err(internal)?;
    let timeline: Vec<Value> = events
        .into_iter()
        .map(|e| {
            json!({
                "at_ms": e.at_ms,
                "actor": e.actor,
                "kind": e.kind,
                "detail": e.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
            })
        })
        .collect();
    let mut v = lead_json(&lead);
    v["phones"] = json!(phones);
    v["timeline"] = json!(timeline);
    Ok(Json(v))
}

#[derive(Deserialize)]
struct Change {
    name: Option<String>,
    company: Option<String>,
    email: Option<String>,
    grade: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    product: Option<String>,
    custom: Option<Value>,
    /// The follow-up date agreed with the customer (ms since the epoch).
    next_follow_up_ms: Option<i64>,
}

/// `PATCH /api/leads/{id}`: changes the given fields; each change goes on the timeline. A
/// new grade sets the next follow-up from its cadence unless a date is given with it.
async fn change(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<Change>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let Json(c) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let lead = visible(&s, &p, id).await?;
    let grade = check_grade(&c.grade)?;
    check_in("status", &c.status, STATUSES)?;
    check_custom(&c.custom)?;
    if let Some(o) = &c.owner {
        if !p.is_supervisor_or_admin() {
            return Err(err(
                StatusCode::FORBIDDEN,
                "only supervisors and admins hand leads over",
            ));
        }
        if !oversees(&s, &p, &[o]) || s.access.role(o).is_none() {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("owner {o:?}: not one of your agents"),
            ));
        }
    }
    let now = crate::store::now_ms();
    let next = c.next_follow_up_ms.or_else(|| {
        let g = grade.as_deref().and_then(Grade::parse)?;
        (Some(g.as_str()) != lead.grade.as_deref())
            .then(|| s.leads.cadence_days.next_follow_up(Some(g), now))
            .flatten()
    });
    let changes = LeadChanges {
        name: c
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        company: c.company,
        email: c.email,
        grade,
        status: c.status,
        owner_agent: c.owner,
        product: c.product,
        custom: c.custom,
        next_follow_up_ms: next,
    };
    s.store
        .update_lead(id, &changes, &p.name)
        .await
        .map_err(internal)?;
    read(State(s), headers, Path(id)).await
}

#[derive(Deserialize)]
struct Contact {
    /// `reached`, `no_answer`, `busy`, `wrong_number`, `callback`, `appointment`, ...
    result: String,
    note: Option<String>,
    /// The date agreed with the customer; else the grade's cadence from now.
    next_follow_up_ms: Option<i64>,
}

/// `POST /api/leads/{id}/contacts`: a contact with the customer, on the timeline; the first
/// one meets the 24-hour rule; the next follow-up is the agreed date or the cadence's.
async fn contact(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<Contact>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let Json(c) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    let result = c.result.trim();
    if result.is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "a contact needs a result"));
    }
    let detail = json!({ "result": result, "note": c.note });
    contact_made(&s, &p, id, detail, c.next_follow_up_ms).await?;
    read(State(s), headers, Path(id)).await
}

/// The lead `id`, if `p` may see it (404 otherwise).
pub(crate) async fn visible_lead(
    s: &AppState,
    p: &Principal,
    id: i64,
) -> Result<LeadRow, ApiError> {
    visible(s, p, id).await
}

/// Records a contact (`detail` has its result) on a lead `p` may see: the next follow-up is
/// `next`, else the grade's cadence from now.
pub(crate) async fn contact_made(
    s: &AppState,
    p: &Principal,
    id: i64,
    mut detail: Value,
    next: Option<i64>,
) -> Result<(), ApiError> {
    let lead = visible(s, p, id).await?;
    let now = crate::store::now_ms();
    let next = next.or_else(|| {
        s.leads
            .cadence_days
            .next_follow_up(lead.grade.as_deref().and_then(Grade::parse), now)
    });
    detail["next_follow_up_ms"] = json!(next);
    s.store
        .record_contact(id, &p.name, &detail, next)
        .await
        .map_err(internal)?;
    Ok(())
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

async fn note(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<Note>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let Json(n) = body.map_err(|e| err(StatusCode::BAD_REQUEST, e.body_text()))?;
    if n.text.trim().is_empty() {
        return Err(err(StatusCode::BAD_REQUEST, "an empty note"));
    }
    visible(&s, &p, id).await?;
    s.store
        .add_lead_note(id, &p.name, n.text.trim())
        .await
        .map_err(internal)?;
    read(State(s), headers, Path(id)).await
}

#[derive(Deserialize)]
struct WorklistQuery {
    /// A supervisor looks at one of their agents' lists.
    agent: Option<String>,
}

/// `GET /api/worklist`: the user's leads waiting for a first contact or due for a follow-up
/// today (overdue ones first), each marked `first_contact`, `overdue` or `due`.
async fn worklist(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WorklistQuery>,
) -> ApiResult {
    let p = principal(&s, &headers).await?;
    let agent = q.agent.unwrap_or_else(|| p.name.clone());
    if !oversees(&s, &p, &[&agent]) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("agent {agent} is not yours to see"),
        ));
    }
    let now = crate::store::now_ms();
    // Due today: until the end of the (UTC) day.
    let end_of_day = (now / crate::leads::DAY_MS + 1) * crate::leads::DAY_MS;
    let rows = s
        .store
        .worklist(&agent, end_of_day)
        .await
        .map_err(internal)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|l| {
            let why = if l.first_contact_at_ms.is_none() && l.first_contact_due_ms.is_some() {
                "first_contact"
            } else if l.next_follow_up_ms.is_some_and(|t| t < now) {
                "overdue"
            } else {
                "due"
            };
            let mut v = lead_json(l);
            v["why"] = json!(why);
            v
        })
        .collect();
    Ok(Json(json!({ "agent": agent, "items": items })))
}
