//! The lead database as the API works it: leads with their phones, the timeline of each, the
//! follow-up dates the cadence sets, and an agent's work list.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Store, StoreError, now_ms};

/// One lead as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LeadRow {
    pub id: i64,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub grade: Option<String>,
    pub status: String,
    pub source: Option<String>,
    pub owner_agent: Option<String>,
    pub customer_no: Option<String>,
    pub product: Option<String>,
    /// JSON object text.
    pub custom: Option<String>,
    pub next_follow_up_ms: Option<i64>,
    pub first_contact_due_ms: Option<i64>,
    pub first_contact_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: Option<i64>,
}

const LEAD_COLUMNS: &str = "id, name, company, email, grade, status, source, owner_agent,
    customer_no, product, custom, next_follow_up_ms, first_contact_due_ms, first_contact_at_ms,
    created_at_ms, updated_at_ms";

/// A phone of a lead.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PhoneRow {
    pub phone: String,
    pub kind: String,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub kind: String,
    pub detail: Option<String>,
}

/// A new lead, checked by the caller (phones in E.164).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadDraft {
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub grade: Option<String>,
    pub source: Option<String>,
    pub owner_agent: Option<String>,
    pub customer_no: Option<String>,
    pub product: Option<String>,
    pub custom: Option<Value>,
    pub phones: Vec<String>,
    pub next_follow_up_ms: Option<i64>,
    pub first_contact_due_ms: Option<i64>,
}

/// Changes to a lead, each optional; `None` leaves the field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadChanges {
    pub name: Option<String>,
    pub company: Option<String>,
    pub email: Option<String>,
    pub grade: Option<String>,
    pub status: Option<String>,
    pub owner_agent: Option<String>,
    pub product: Option<String>,
    pub custom: Option<Value>,
    pub next_follow_up_ms: Option<i64>,
}

/// Why a lead was not created.
#[derive(Debug)]
pub enum CreateError {
    /// A phone belongs to this lead already.
    Duplicate {
        lead: i64,
        phone: String,
    },
    Store(StoreError),
}

impl From<sqlx::Error> for CreateError {
    fn from(e: sqlx::Error) -> Self {
        CreateError::Store(StoreError::Sql(e))
    }
}

impl Store {
    /// Creates a lead with its phones and a `created` timeline entry, all or nothing. A phone
    /// another lead has already refuses it (duplicate check by normalised number).
    pub async fn create_lead(&self, d: &LeadDraft, actor: &str) -> Result<i64, CreateError> {
        let mut tx = self.pool().begin().await?;
        if let Some((lead, phone)) = lead_with_phones(&mut tx, &d.phones).await? {
            return Err(CreateError::Duplicate { lead, phone });
        }
        let id = insert_lead(&mut tx, d, actor, "created").await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Imports leads in one transaction: every row goes in, or (on a database error) none
    /// does. A row whose phone a lead has already (in the database or earlier in the file)
    /// is skipped, merged into that lead (missing fields and phones added, a `merged`
    /// timeline entry), or added as a new lead, as `mode` says.
    pub async fn import_leads(
        &self,
        rows: &[(usize, LeadDraft)],
        mode: DuplicateMode,
        actor: &str,
    ) -> Result<ImportReport, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut report = ImportReport::default();
        for (line, d) in rows {
            let known = lead_with_phones(&mut tx, &d.phones).await?;
            match (known, mode) {
                (Some((lead, phone)), DuplicateMode::Skip) => report.skipped.push(json!({
                    "line": line, "lead": lead, "reason": format!("phone {phone} belongs to lead {lead}")
                })),
                (Some((lead, _)), DuplicateMode::Merge) => {
                    merge_into(&mut tx, lead, d, actor).await?;
                    report.merged.push(lead);
                }
                (_, _) => {
                    let id = insert_lead(&mut tx, d, actor, "imported").await?;
                    report.created.push(id);
                }
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    pub async fn lead(&self, id: i64) -> Result<Option<LeadRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, LeadRow>(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Every lead, oldest first (exports).
    pub async fn all_leads(&self) -> Result<Vec<LeadRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, LeadRow>(&format!("SELECT {LEAD_COLUMNS} FROM leads ORDER BY id"))
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub async fn lead_phones(&self, id: i64) -> Result<Vec<PhoneRow>, StoreError> {
        Ok(sqlx::query_as::<_, PhoneRow>(
            "SELECT phone, kind FROM lead_phones WHERE lead_id = ?
             ORDER BY kind <> 'primary', phone",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The lead's timeline, oldest first.
    pub async fn lead_events(&self, id: i64) -> Result<Vec<EventRow>, StoreError> {
        Ok(sqlx::query_as::<_, EventRow>(
            "SELECT id, at_ms, actor, kind, detail FROM lead_events WHERE lead_id = ?
             ORDER BY at_ms, id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Leads matching a search (name, company, e-mail or phone digits), grade and status,
    /// newest first (at most 500).
    pub async fn search_leads(
        &self,
        q: Option<&str>,
        grade: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<LeadRow>, StoreError> {
        let like = q.map(|q| format!("%{}%", q.trim()));
        let digits = q
            .map(|q| q.chars().filter(char::is_ascii_digit).collect::<String>())
            .filter(|d| d.len() >= 3)
            .map(|d| format!("%{d}%"));
        Ok(sqlx::query_as::<_, LeadRow>(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads l
             WHERE (? IS NULL OR l.name LIKE ? OR l.company LIKE ? OR l.email LIKE ?
                    OR (? IS NOT NULL AND EXISTS (SELECT 1 FROM lead_phones p
                        WHERE p.lead_id = l.id AND p.phone LIKE ?)))
               AND (? IS NULL OR l.grade = ?) AND (? IS NULL OR l.status = ?)
             ORDER BY l.id DESC LIMIT 500"
        ))
        .bind(&like)
        .bind(&like)
        .bind(&like)
        .bind(&like)
        .bind(&digits)
        .bind(&digits)
        .bind(grade)
        .bind(grade)
        .bind(status)
        .bind(status)
        .fetch_all(self.pool())
        .await?)
    }

    /// Applies `c` with one timeline entry per changed field (its old and new value).
    /// False: no such lead.
    pub async fn update_lead(
        &self,
        id: i64,
        c: &LeadChanges,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let Some(old) =
            sqlx::query_as::<_, LeadRow>(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        let now = now_ms();
        let custom = c.custom.as_ref().map(Value::to_string);
        let fields: [(&str, Option<String>, Option<String>); 9] = [
            ("name", Some(old.name.clone()), c.name.clone()),
            ("company", old.company.clone(), c.company.clone()),
            ("email", old.email.clone(), c.email.clone()),
            ("grade", old.grade.clone(), c.grade.clone()),
            ("status", Some(old.status.clone()), c.status.clone()),
            (
                "owner_agent",
                old.owner_agent.clone(),
                c.owner_agent.clone(),
            ),
            ("product", old.product.clone(), c.product.clone()),
            ("custom", old.custom.clone(), custom),
            (
                "next_follow_up_ms",
                old.next_follow_up_ms.map(|v| v.to_string()),
                c.next_follow_up_ms.map(|v| v.to_string()),
            ),
        ];
        for (field, before, after) in fields {
            let Some(after) = after else { continue };
            if before.as_deref() == Some(after.as_str()) {
                continue;
            }
            // Field names come from the list above, never from the request.
            sqlx::query(&format!(
                "UPDATE leads SET {field} = ?, updated_at_ms = ? WHERE id = ?"
            ))
            .bind(&after)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "from": before, "to": after });
            add_event(&mut tx, id, actor, field, Some(&detail), now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A contact with the customer (a call, a visit): on the timeline with its result, the
    /// first contact noted, a new lead now `contacted`, and the next follow-up set.
    pub async fn record_contact(
        &self,
        id: i64,
        actor: &str,
        detail: &Value,
        next_follow_up_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE leads SET first_contact_at_ms = COALESCE(first_contact_at_ms, ?),
               status = CASE status WHEN 'new' THEN 'contacted' ELSE status END,
               next_follow_up_ms = ?, updated_at_ms = ?
             WHERE id = ?",
        )
        .bind(now)
        .bind(next_follow_up_ms)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        add_event(&mut tx, id, actor, "contact", Some(detail), now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A note on the timeline.
    pub async fn add_lead_note(
        &self,
        id: i64,
        actor: &str,
        text: &str,
    ) -> Result<bool, StoreError> {
        if self.lead(id).await?.is_none() {
            return Ok(false);
        }
        let mut tx = self.pool().begin().await?;
        add_event(
            &mut tx,
            id,
            actor,
            "note",
            Some(&json!({ "text": text })),
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// An agent's work list at `now`: leads they own that wait for a first contact, or whose
    /// follow-up is due by the end of `horizon_ms`; C, invalid, won and lost leads are not
    /// on it. First contacts first (the 24-hour rule, soonest deadline first), then
    /// follow-ups, most overdue first.
    pub async fn worklist(&self, agent: &str, horizon_ms: i64) -> Result<Vec<LeadRow>, StoreError> {
        Ok(sqlx::query_as::<_, LeadRow>(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads
             WHERE owner_agent = ?
               AND COALESCE(grade, '') NOT IN ('C', 'invalid')
               AND status NOT IN ('won', 'lost', 'invalid')
               AND ((first_contact_at_ms IS NULL AND first_contact_due_ms IS NOT NULL)
                    OR next_follow_up_ms <= ?)
             ORDER BY (first_contact_at_ms IS NULL AND first_contact_due_ms IS NOT NULL) DESC,
                      COALESCE(first_contact_due_ms, next_follow_up_ms), id"
        ))
        .bind(agent)
        .bind(horizon_ms)
        .fetch_all(self.pool())
        .await?)
    }
}

/// What to do with an imported row whose phone a lead has already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateMode {
    Skip,
    Merge,
    Add,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub created: Vec<i64>,
    pub merged: Vec<i64>,
    /// `{line, lead, reason}` of each row left out as a duplicate.
    pub skipped: Vec<Value>,
}

/// The first lead holding one of `phones`.
async fn lead_with_phones(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    phones: &[String],
) -> Result<Option<(i64, String)>, sqlx::Error> {
    for p in phones {
        let known: Option<(i64,)> =
            sqlx::query_as("SELECT lead_id FROM lead_phones WHERE phone = ? LIMIT 1")
                .bind(p)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some((lead,)) = known {
            return Ok(Some((lead, p.clone())));
        }
    }
    Ok(None)
}

async fn insert_lead(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    d: &LeadDraft,
    actor: &str,
    event: &str,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO leads (name, company, email, grade, source, owner_agent, customer_no,
           product, custom, status, next_follow_up_ms, first_contact_due_ms, created_at_ms,
           updated_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'new', ?, ?, ?, ?) RETURNING id",
    )
    .bind(&d.name)
    .bind(&d.company)
    .bind(&d.email)
    .bind(&d.grade)
    .bind(&d.source)
    .bind(&d.owner_agent)
    .bind(&d.customer_no)
    .bind(&d.product)
    .bind(d.custom.as_ref().map(Value::to_string))
    .bind(d.next_follow_up_ms)
    .bind(d.first_contact_due_ms)
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    for (i, p) in d.phones.iter().enumerate() {
        sqlx::query("INSERT OR IGNORE INTO lead_phones (lead_id, phone, kind) VALUES (?, ?, ?)")
            .bind(id)
            .bind(p)
            .bind(if i == 0 { "primary" } else { "alternate" })
            .execute(&mut **tx)
            .await?;
    }
    let detail = json!({ "source": d.source, "grade": d.grade, "owner": d.owner_agent });
    add_event(tx, id, actor, event, Some(&detail), now).await?;
    Ok(id)
}

/// Adds what `d` knows and `lead` does not (fields left empty, phones it lacks).
async fn merge_into(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    lead: i64,
    d: &LeadDraft,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE leads SET company = COALESCE(company, ?), email = COALESCE(email, ?),
           grade = COALESCE(grade, ?), source = COALESCE(source, ?),
           owner_agent = COALESCE(owner_agent, ?), product = COALESCE(product, ?),
           updated_at_ms = ?
         WHERE id = ?",
    )
    .bind(&d.company)
    .bind(&d.email)
    .bind(&d.grade)
    .bind(&d.source)
    .bind(&d.owner_agent)
    .bind(&d.product)
    .bind(now)
    .bind(lead)
    .execute(&mut **tx)
    .await?;
    for p in &d.phones {
        sqlx::query(
            "INSERT OR IGNORE INTO lead_phones (lead_id, phone, kind) VALUES (?, ?, 'alternate')",
        )
        .bind(lead)
        .bind(p)
        .execute(&mut **tx)
        .await?;
    }
    let detail = json!({ "name": d.name, "phones": d.phones, "email": d.email });
    add_event(tx, lead, actor, "merged", Some(&detail), now).await
}

pub(super) async fn add_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    lead: i64,
    actor: &str,
    kind: &str,
    detail: Option<&Value>,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lead_events (lead_id, at_ms, actor, kind, detail) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(lead)
    .bind(at_ms)
    .bind(actor)
    .bind(kind)
    .bind(detail.map(Value::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
