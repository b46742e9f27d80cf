//! The first cut of the lead store: enough for the IVR to recognise a caller (by their number
//! or a customer number they key in) and for the demo to ship a few leads. The lead database
//! proper (timeline, follow-ups, handover, import) builds on these tables.

use std::path::Path;

use super::{Store, StoreError, now_ms};
use crate::ivr::LeadMatch;

/// A phone number as stored and matched: digits only, a leading `+` kept. `+49 (30) 1234-5`
/// and `+49301234 5` are the same number.
pub fn normalize_phone(raw: &str) -> String {
    let raw = raw.trim();
    let plus = raw.starts_with('+');
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if plus { format!("+{digits}") } else { digits }
}

/// One lead to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLead {
    pub name: String,
    pub company: Option<String>,
    pub grade: Option<String>,
    pub owner_agent: Option<String>,
    pub customer_no: Option<String>,
    pub phones: Vec<String>,
}

impl Store {
    /// The lead whose primary or alternate phone is `phone` (normalised first). A number
    /// that two leads share matches the newest lead.
    pub async fn lead_by_phone(&self, phone: &str) -> Result<Option<LeadMatch>, StoreError> {
        let phone = normalize_phone(phone);
        if phone.trim_start_matches('+').is_empty() {
            return Ok(None);
        }
        let row: Option<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT l.id, l.name, l.grade, l.owner_agent FROM leads l
             JOIN lead_phones p ON p.lead_id = l.id
             WHERE p.phone = $1 ORDER BY l.id DESC LIMIT 1",
        )
        .bind(&phone)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(to_match))
    }

    /// The lead of a caller's number as the carrier sent it: as stored, or in E.164 with
    /// `country` for a national number (`030 123456` finds `+4930123456`).
    pub async fn lead_by_caller(
        &self,
        number: &str,
        country: &str,
    ) -> Result<Option<LeadMatch>, StoreError> {
        let plain = normalize_phone(number);
        if plain.trim_start_matches('+').is_empty() {
            return Ok(None);
        }
        let intl = crate::leads::e164(number, country).unwrap_or_else(|| plain.clone());
        // One query for both spellings (the call path waits for it): the number as stored
        // first, then the newest lead.
        let row: Option<(i64, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT l.id, l.name, l.grade, l.owner_agent FROM lead_phones p
             JOIN leads l ON l.id = p.lead_id
             WHERE p.phone IN ($1, $2) ORDER BY p.phone = $1 DESC, l.id DESC LIMIT 1",
        )
        .bind(&plain)
        .bind(&intl)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(to_match))
    }

    /// Every lead with the caller's number among its phones (as stored, or in E.164 with
    /// `country`), newest first: a screen pop lists them all.
    pub async fn leads_by_caller(
        &self,
        number: &str,
        country: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let plain = normalize_phone(number);
        let intl = crate::leads::e164(number, country).unwrap_or_else(|| plain.clone());
        if plain.trim_start_matches('+').is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT DISTINCT lead_id FROM lead_phones WHERE phone = $1 OR phone = $2
             ORDER BY lead_id DESC LIMIT 20",
        )
        .bind(&plain)
        .bind(&intl)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The lead with this customer number.
    pub async fn lead_by_customer_no(&self, no: &str) -> Result<Option<LeadMatch>, StoreError> {
        let row: Option<(i64, String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, name, grade, owner_agent FROM leads WHERE customer_no = $1")
                .bind(no.trim())
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(to_match))
    }

    /// Inserts a lead with its phones; returns its id.
    pub async fn insert_lead(&self, lead: &NewLead) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO leads (name, company, grade, owner_agent, customer_no, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&lead.name)
        .bind(&lead.company)
        .bind(&lead.grade)
        .bind(&lead.owner_agent)
        .bind(&lead.customer_no)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        for (i, p) in lead.phones.iter().enumerate() {
            let phone = normalize_phone(p);
            if phone.trim_start_matches('+').is_empty() {
                continue;
            }
            sqlx::query(
                "INSERT INTO lead_phones (lead_id, phone, kind) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.0)
            .bind(phone)
            .bind(if i == 0 { "primary" } else { "alternate" })
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id.0)
    }

    /// Loads the demo leads from a CSV file (`name,company,grade,owner_agent,customer_no,
    /// phone[,alternate phone...]`, `#` comments) when the lead table is empty, so a fresh
    /// install has leads to pop and a used one is never touched. Returns how many were added.
    pub async fn seed_leads(&self, path: &Path) -> Result<usize, String> {
        let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM leads")
            .fetch_one(self.pool())
            .await
            .map_err(|e| e.to_string())?;
        if count.0 > 0 {
            return Ok(0);
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let leads = parse_leads_csv(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for l in &leads {
            self.insert_lead(l).await.map_err(|e| e.to_string())?;
        }
        Ok(leads.len())
    }
}

fn to_match(r: (i64, String, Option<String>, Option<String>)) -> LeadMatch {
    LeadMatch {
        lead_id: r.0,
        name: r.1,
        grade: r.2,
        owner_agent: r.3,
    }
}

/// Parses the seed CSV (no quoting: the demo file has no commas inside fields).
pub fn parse_leads_csv(text: &str) -> Result<Vec<NewLead>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() < 6 {
            return Err(format!(
                "line {}: expected name,company,grade,owner_agent,customer_no,phone",
                n + 1
            ));
        }
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if f[0].is_empty() {
            return Err(format!("line {}: a lead needs a name", n + 1));
        }
        if let Some(g) = opt(f[2])
            && !matches!(g.as_str(), "H" | "A" | "B" | "C")
        {
            return Err(format!(
                "line {}: grade {g:?} is not one of H, A, B, C",
                n + 1
            ));
        }
        out.push(NewLead {
            name: f[0].to_string(),
            company: opt(f[1]),
            grade: opt(f[2]),
            owner_agent: opt(f[3]),
            customer_no: opt(f[4]),
            phones: f[5..]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.to_string())
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised_to_digits() {
        assert_eq!(normalize_phone("+49 (30) 1234-5"), "+493012345");
        assert_eq!(normalize_phone(" 030 12345 "), "03012345");
        assert_eq!(normalize_phone("abc"), "");
    }

    #[test]
    fn seed_csv_is_checked() {
        let ok = parse_leads_csv("# demo\nAnna Berg,Berg GmbH,H,1001,10001,+4930111,+4930222\n")
            .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].phones, vec!["+4930111", "+4930222"]);
        assert!(parse_leads_csv("x,y\n").unwrap_err().contains("line 1"));
        assert!(
            parse_leads_csv("A,B,Z,1001,1,+1\n")
                .unwrap_err()
                .contains("grade")
        );
    }

    #[tokio::test]
    async fn callers_are_found_by_any_of_their_numbers_and_by_customer_number() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir).await;
        let csv = dir.path().join("leads.csv");
        std::fs::write(
            &csv,
            "Anna Berg,Berg GmbH,H,1001,10001,+49 30 111,+49 30 222\n",
        )
        .unwrap();
        assert_eq!(store.seed_leads(&csv).await.unwrap(), 1);
        assert_eq!(
            store.seed_leads(&csv).await.unwrap(),
            0,
            "only into an empty table"
        );
        let a = store
            .lead_by_phone("+4930222")
            .await
            .unwrap()
            .expect("alternate phone");
        assert_eq!(
            (
                a.name.as_str(),
                a.grade.as_deref(),
                a.owner_agent.as_deref()
            ),
            ("Anna Berg", Some("H"), Some("1001"))
        );
        assert_eq!(
            store
                .lead_by_customer_no("10001")
                .await
                .unwrap()
                .map(|l| l.lead_id),
            Some(a.lead_id)
        );
        assert_eq!(store.lead_by_phone("+4930333").await.unwrap(), None);
        assert_eq!(store.lead_by_phone("").await.unwrap(), None);
    }
}
