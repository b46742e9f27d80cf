//! The lead database as the API works it: leads with their phones, the timeline of each, the
//! follow-up dates the cadence sets, and an agent's work list.

use std::collections::{HashMap, HashSet};

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
    ///
    /// Rows go in by batches of [`IMPORT_BATCH`]: one query finds which of a batch's phones
    /// are known, and new leads, their phones and their timeline entries go in with one
    /// statement each (a query per row took 78 s for 100,000 rows).
    pub async fn import_leads(
        &self,
        rows: &[(usize, LeadDraft)],
        mode: DuplicateMode,
        actor: &str,
    ) -> Result<ImportReport, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut report = ImportReport::default();
        // The phones of the leads this import made or merged into so far.
        let mut filed: HashMap<String, i64> = HashMap::new();
        for chunk in rows.chunks(IMPORT_BATCH) {
            let known = match mode {
                DuplicateMode::Add => HashMap::new(),
                _ => known_phones(&mut tx, chunk).await?,
            };
            let mut batch = NewBatch::default();
            for (line, d) in chunk {
                if mode == DuplicateMode::Add {
                    batch.push(d);
                    continue;
                }
                // A phone of a row still waiting in the batch: the batch goes in first, so
                // this row finds that lead.
                if d.phones.iter().any(|p| batch.phones.contains(p.as_str())) {
                    batch
                        .insert(&mut tx, actor, &mut filed, &mut report)
                        .await?;
                }
                let owner = d
                    .phones
                    .iter()
                    .find_map(|p| known.get(p).or_else(|| filed.get(p)).map(|l| (*l, p)));
                match (owner, mode) {
                    (Some((lead, phone)), DuplicateMode::Skip) => report.skipped.push(json!({
                        "line": line, "lead": lead, "reason": format!("phone {phone} belongs to lead {lead}")
                    })),
                    (Some((lead, _)), _) => {
                        merge_into(&mut tx, lead, d, actor).await?;
                        report.merged.push(lead);
                        for p in &d.phones {
                            filed.entry(p.clone()).or_insert(lead);
                        }
                    }
                    (None, _) => batch.push(d),
                }
            }
            batch
                .insert(&mut tx, actor, &mut filed, &mut report)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    pub async fn lead(&self, id: i64) -> Result<Option<LeadRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, LeadRow>(&format!(
                "SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1"
            ))
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
            "SELECT phone, kind FROM lead_phones WHERE lead_id = $1
             ORDER BY kind <> 'primary', phone",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The lead's timeline, oldest first.
    pub async fn lead_events(&self, id: i64) -> Result<Vec<EventRow>, StoreError> {
        Ok(sqlx::query_as::<_, EventRow>(
            "SELECT id, at_ms, actor, kind, detail FROM lead_events WHERE lead_id = $1
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
             WHERE ($1 IS NULL OR LOWER(l.name) LIKE LOWER($2) OR LOWER(l.company) LIKE LOWER($3)
                    OR LOWER(l.email) LIKE LOWER($4)
                    OR ($5 IS NOT NULL AND EXISTS (SELECT 1 FROM lead_phones p
                        WHERE p.lead_id = l.id AND p.phone LIKE $6)))
               AND ($7 IS NULL OR l.grade = $8) AND ($9 IS NULL OR l.status = $10)
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
        let Some(old) = sqlx::query_as::<_, LeadRow>(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1"
        ))
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
            let sql = format!("UPDATE leads SET {field} = $1, updated_at_ms = $2 WHERE id = $3");
            let q = sqlx::query(&sql);
            // The one integer column takes an integer (PostgreSQL does not cast text).
            let q = match field {
                "next_follow_up_ms" => q.bind(after.parse::<i64>().ok()),
                _ => q.bind(&after),
            };
            q.bind(now).bind(id).execute(&mut *tx).await?;
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
            "UPDATE leads SET first_contact_at_ms = COALESCE(first_contact_at_ms, $1),
               status = CASE status WHEN 'new' THEN 'contacted' ELSE status END,
               next_follow_up_ms = $2, updated_at_ms = $3
             WHERE id = $4",
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
    /// follow-up is due by the end of `horizon_ms`; C, invalid, won and lost leads, and hot
    /// leads (with sales), are not on it. First contacts first (the 24-hour rule, soonest deadline first), then
    /// follow-ups, most overdue first.
    pub async fn worklist(&self, agent: &str, horizon_ms: i64) -> Result<Vec<LeadRow>, StoreError> {
        Ok(sqlx::query_as::<_, LeadRow>(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads
             WHERE owner_agent = $1
               AND COALESCE(grade, '') NOT IN ('C', 'invalid')
               AND status NOT IN ('hot', 'won', 'lost', 'invalid')
               AND ((first_contact_at_ms IS NULL AND first_contact_due_ms IS NOT NULL)
                    OR next_follow_up_ms <= $2)
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
    tx: &mut super::Tx<'_>,
    phones: &[String],
) -> Result<Option<(i64, String)>, sqlx::Error> {
    for p in phones {
        let known: Option<(i64,)> =
            sqlx::query_as("SELECT lead_id FROM lead_phones WHERE phone = $1 LIMIT 1")
                .bind(p)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some((lead,)) = known {
            return Ok(Some((lead, p.clone())));
        }
    }
    Ok(None)
}

/// Leads an import inserts at once (13 parameters each: far below SQLite's limit).
pub const IMPORT_BATCH: usize = 500;

/// Which of the rows' phones a lead has: phone -> the first such lead.
async fn known_phones(
    tx: &mut super::Tx<'_>,
    rows: &[(usize, LeadDraft)],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let phones: Vec<&String> = rows.iter().flat_map(|(_, d)| &d.phones).collect();
    if phones.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT phone, MIN(lead_id) FROM lead_phones WHERE phone IN ({}) GROUP BY phone",
        super::placeholders(phones.len(), 1)
    );
    let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
    for p in phones {
        q = q.bind(p);
    }
    let found = q.fetch_all(&mut **tx).await?;
    Ok(found.into_iter().collect())
}

/// New leads of an import waiting to go in together.
#[derive(Default)]
struct NewBatch<'a> {
    leads: Vec<&'a LeadDraft>,
    phones: HashSet<&'a str>,
}

impl<'a> NewBatch<'a> {
    fn push(&mut self, d: &'a LeadDraft) {
        self.phones.extend(d.phones.iter().map(String::as_str));
        self.leads.push(d);
    }

    /// Inserts the waiting leads, their phones and their `imported` timeline entries; their
    /// ids go to the report in row order, their phones to `filed`.
    async fn insert(
        &mut self,
        tx: &mut super::Tx<'_>,
        actor: &str,
        filed: &mut HashMap<String, i64>,
        report: &mut ImportReport,
    ) -> Result<(), sqlx::Error> {
        if self.leads.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let sql = format!(
            "INSERT INTO leads (name, company, email, grade, source, owner_agent, customer_no,
               product, custom, status, next_follow_up_ms, first_contact_due_ms, created_at_ms,
               updated_at_ms) VALUES {} RETURNING id",
            super::values_list(self.leads.len(), 14)
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for d in &self.leads {
            q = q
                .bind(&d.name)
                .bind(&d.company)
                .bind(&d.email)
                .bind(&d.grade)
                .bind(&d.source)
                .bind(&d.owner_agent)
                .bind(&d.customer_no)
                .bind(&d.product)
                .bind(d.custom.as_ref().map(Value::to_string))
                .bind("new")
                .bind(d.next_follow_up_ms)
                .bind(d.first_contact_due_ms)
                .bind(now)
                .bind(now);
        }
        let mut ids: Vec<i64> = q.fetch_all(&mut **tx).await?;
        // New rowids grow in insertion order; RETURNING's own order is unspecified.
        ids.sort_unstable();
        let phones: Vec<(i64, &String, &str)> = ids
            .iter()
            .zip(&self.leads)
            .flat_map(|(id, d)| {
                d.phones
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (*id, p, if i == 0 { "primary" } else { "alternate" }))
            })
            .collect();
        for part in phones.chunks(IMPORT_BATCH * 4) {
            let sql = format!(
                "INSERT INTO lead_phones (lead_id, phone, kind) VALUES {} ON CONFLICT DO NOTHING",
                super::values_list(part.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for (id, p, kind) in part {
                q = q.bind(*id).bind(*p).bind(*kind);
            }
            q.execute(&mut **tx).await?;
        }
        let sql = format!(
            "INSERT INTO lead_events (lead_id, at_ms, actor, kind, detail) VALUES {}",
            super::values_list(ids.len(), 5)
        );
        let mut q = sqlx::query(&sql);
        for (id, d) in ids.iter().zip(&self.leads) {
            let detail = json!({ "source": d.source, "grade": d.grade, "owner": d.owner_agent });
            q = q
                .bind(*id)
                .bind(now)
                .bind(actor)
                .bind("imported")
                .bind(detail.to_string());
        }
        q.execute(&mut **tx).await?;
        for (id, d) in ids.iter().zip(&self.leads) {
            for p in &d.phones {
                filed.entry(p.clone()).or_insert(*id);
            }
        }
        report.created.extend(ids);
        self.leads.clear();
        self.phones.clear();
        Ok(())
    }
}

async fn insert_lead(
    tx: &mut super::Tx<'_>,
    d: &LeadDraft,
    actor: &str,
    event: &str,
) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO leads (name, company, email, grade, source, owner_agent, customer_no,
           product, custom, status, next_follow_up_ms, first_contact_due_ms, created_at_ms,
           updated_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'new', $10, $11, $12, $13) RETURNING id",
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
        sqlx::query(
            "INSERT INTO lead_phones (lead_id, phone, kind) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
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
    tx: &mut super::Tx<'_>,
    lead: i64,
    d: &LeadDraft,
    actor: &str,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "UPDATE leads SET company = COALESCE(company, $1), email = COALESCE(email, $2),
           grade = COALESCE(grade, $3), source = COALESCE(source, $4),
           owner_agent = COALESCE(owner_agent, $5), product = COALESCE(product, $6),
           updated_at_ms = $7
         WHERE id = $8",
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
            "INSERT INTO lead_phones (lead_id, phone, kind) VALUES ($1, $2, 'alternate')
             ON CONFLICT DO NOTHING",
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
    tx: &mut super::Tx<'_>,
    lead: i64,
    actor: &str,
    kind: &str,
    detail: Option<&Value>,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lead_events (lead_id, at_ms, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: usize, name: &str, phones: &[&str]) -> (usize, LeadDraft) {
        (
            line,
            LeadDraft {
                name: name.into(),
                phones: phones.iter().map(|p| p.to_string()).collect(),
                ..LeadDraft::default()
            },
        )
    }

    /// 1,200 rows (three batches) with a duplicate of a row in its own batch, of a row in
    /// an earlier batch, and of a lead already stored.
    fn rows() -> Vec<(usize, LeadDraft)> {
        let mut rows: Vec<_> = (0..1200)
            .map(|i| row(i + 2, &format!("Lead {i}"), &[&format!("+4930{:07}", i)]))
            .collect();
        rows[10] = row(12, "Twin of 5", &["+4917600000010", "+49300000005"]);
        rows[700] = row(702, "Twin of 3", &["+49300000003"]);
        rows[1100] = row(1102, "Twin of the stored", &["+49309999999"]);
        rows
    }

    async fn store() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::store::testing::open(&dir).await;
        let stored = s
            .import_leads(
                &[row(2, "Stored", &["+49309999999"])],
                DuplicateMode::Add,
                "t",
            )
            .await
            .unwrap()
            .created[0];
        (dir, s, stored)
    }

    #[tokio::test]
    async fn duplicates_are_found_within_a_batch_across_batches_and_in_the_database() {
        let (_d, s, stored) = store().await;
        let r = s
            .import_leads(&rows(), DuplicateMode::Skip, "t")
            .await
            .unwrap();
        assert_eq!(r.created.len(), 1197);
        assert!(r.created.windows(2).all(|w| w[0] < w[1]), "in row order");
        let skipped: Vec<(i64, i64)> = r
            .skipped
            .iter()
            .map(|v| (v["line"].as_i64().unwrap(), v["lead"].as_i64().unwrap()))
            .collect();
        // Row 5 (line 7) and row 3 (line 5) were created as the file's 5th and 3rd leads.
        assert_eq!(
            skipped,
            vec![(12, r.created[5]), (702, r.created[3]), (1102, stored)]
        );
        // Each created lead has its phone, the primary one, and an `imported` entry.
        let lead = s.lead(r.created[1196]).await.unwrap().unwrap();
        assert_eq!(lead.name, "Lead 1199");
        let phones = s.lead_phones(lead.id).await.unwrap();
        assert_eq!(
            (phones[0].phone.as_str(), phones[0].kind.as_str()),
            ("+49300001199", "primary")
        );
        let events = s.lead_events(lead.id).await.unwrap();
        assert_eq!(events[0].kind, "imported");
    }

    #[tokio::test]
    async fn merging_adds_the_new_phones_to_the_lead_the_row_matches() {
        let (_d, s, stored) = store().await;
        let r = s
            .import_leads(&rows(), DuplicateMode::Merge, "t")
            .await
            .unwrap();
        assert_eq!(r.created.len(), 1197);
        assert_eq!(r.merged, vec![r.created[5], r.created[3], stored]);
        let phones: Vec<String> = s
            .lead_phones(r.created[5])
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.phone)
            .collect();
        assert_eq!(phones, ["+49300000005", "+4917600000010"]);
        // Add: every row is a lead of its own.
        let (_d2, s2, _) = store().await;
        let r = s2
            .import_leads(&rows(), DuplicateMode::Add, "t")
            .await
            .unwrap();
        assert_eq!((r.created.len(), r.skipped.len()), (1200, 0));
    }
}
