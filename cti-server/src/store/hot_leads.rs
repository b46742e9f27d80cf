//! Hot-lead reports ([`crate::hot`]): the telemarketer's report with the five criteria, the
//! sales manager's decision, and acceptance by silence once the review time is over.
//!
//! A reported lead becomes `hot` (the report is a contact: it counts as the first one if
//! none was recorded) and leaves its telemarketer's work list while it is reviewed, and for
//! good once accepted (sales has it); a rejection makes it `contacted` again, due for a follow-up at once.

use serde::Serialize;
use serde_json::json;

use super::crm::add_event;
use super::{Store, StoreError};
use crate::hot::{Criteria, Decision};

/// One report with its lead's name, as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HotLeadRow {
    pub id: i64,
    pub lead_id: i64,
    pub lead_name: String,
    pub lead_owner: Option<String>,
    pub reported_by: String,
    pub reported_at_ms: i64,
    /// JSON object: the answer to each criterion.
    #[serde(serialize_with = "as_json")]
    pub criteria: String,
    pub note: Option<String>,
    pub call_id: Option<i64>,
    pub review_by_ms: i64,
    pub state: String,
    /// `None` on an accepted report: nobody answered in time.
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub reason: Option<String>,
}

fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    v.serialize(s)
}

const COLUMNS: &str = "h.id, h.lead_id, l.name AS lead_name, l.owner_agent AS lead_owner,
    h.reported_by, h.reported_at_ms, h.criteria, h.note, h.call_id, h.review_by_ms, h.state,
    h.decided_by, h.decided_at_ms, h.reason";

/// A report to file.
#[derive(Debug, Clone, PartialEq)]
pub struct HotReport {
    pub lead: i64,
    pub criteria: Criteria,
    pub note: Option<String>,
    pub call: Option<i64>,
    pub review_by_ms: i64,
}

/// Why a report was not filed.
#[derive(Debug)]
pub enum ReportError {
    NoLead,
    /// The lead is won, lost or invalid: its status.
    Closed(String),
    /// A report on the lead is pending or accepted already: its id and state.
    Reported {
        id: i64,
        state: String,
    },
    Store(StoreError),
}

/// Why a decision was not recorded.
#[derive(Debug)]
pub enum DecideError {
    NotFound,
    /// Decided already (or accepted by silence): the report as it is.
    Settled(Box<HotLeadRow>),
    Store(StoreError),
}

macro_rules! from_store_errors {
    ($t:ty) => {
        impl From<sqlx::Error> for $t {
            fn from(e: sqlx::Error) -> Self {
                Self::Store(e.into())
            }
        }
        impl From<StoreError> for $t {
            fn from(e: StoreError) -> Self {
                Self::Store(e)
            }
        }
    };
}
from_store_errors!(ReportError);
from_store_errors!(DecideError);

impl Store {
    /// Files a report at `now`: the lead becomes `hot` and leaves the work list until the
    /// sales manager's answer; the report goes on the lead's timeline.
    pub async fn report_hot_lead(
        &self,
        r: &HotReport,
        by: &str,
        now: i64,
    ) -> Result<HotLeadRow, ReportError> {
        self.settle_hot_leads(now).await?;
        let mut tx = self.pool().begin().await?;
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM leads WHERE id = $1")
            .bind(r.lead)
            .fetch_optional(&mut *tx)
            .await?;
        let status = status.ok_or(ReportError::NoLead)?.0;
        if ["won", "lost", "invalid"].contains(&status.as_str()) {
            return Err(ReportError::Closed(status));
        }
        let open: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM hot_leads WHERE lead_id = $1 AND state IN ('pending', 'accepted')
             ORDER BY id DESC LIMIT 1",
        )
        .bind(r.lead)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((id, state)) = open {
            return Err(ReportError::Reported { id, state });
        }
        let criteria =
            serde_json::to_string(&r.criteria).map_err(|e| StoreError::Other(e.to_string()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO hot_leads (lead_id, reported_by, reported_at_ms, criteria, note, call_id,
                                    review_by_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(r.lead)
        .bind(by)
        .bind(now)
        .bind(&criteria)
        .bind(&r.note)
        .bind(r.call)
        .bind(r.review_by_ms)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE leads SET status = 'hot', next_follow_up_ms = NULL, updated_at_ms = $1,
                 first_contact_at_ms = COALESCE(first_contact_at_ms, $1)
             WHERE id = $2",
        )
        .bind(now)
        .bind(r.lead)
        .execute(&mut *tx)
        .await?;
        let detail = json!({
            "hot_lead": id, "criteria": r.criteria, "note": r.note, "call_id": r.call,
            "review_by_ms": r.review_by_ms,
        });
        add_event(&mut tx, r.lead, by, "hot_reported", Some(&detail), now).await?;
        tx.commit().await?;
        self.hot_lead(id).await?.ok_or(ReportError::NoLead)
    }

    /// Accepts, as of their deadline, the reports nobody answered by `now` (silence is
    /// consent); each on its lead's timeline. How many there were.
    pub async fn settle_hot_leads(&self, now: i64) -> Result<usize, StoreError> {
        let due: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT id, lead_id, review_by_ms FROM hot_leads
             WHERE state = 'pending' AND review_by_ms <= $1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        let mut settled = 0;
        for (id, lead, deadline) in due {
            let done = sqlx::query(
                "UPDATE hot_leads SET state = 'accepted', decided_at_ms = review_by_ms
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                let detail = json!({ "hot_lead": id, "by": "silence" });
                add_event(
                    &mut tx,
                    lead,
                    "system",
                    "hot_accepted",
                    Some(&detail),
                    deadline,
                )
                .await?;
                settled += 1;
            }
        }
        tx.commit().await?;
        Ok(settled)
    }

    pub async fn hot_lead(&self, id: i64) -> Result<Option<HotLeadRow>, StoreError> {
        Ok(sqlx::query_as::<_, HotLeadRow>(&format!(
            "SELECT {COLUMNS} FROM hot_leads h JOIN leads l ON l.id = h.lead_id WHERE h.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Reports made in `[from_ms, to_ms)`, optionally in one state, oldest first, with the
    /// silent ones settled as of `now`.
    pub async fn hot_leads(
        &self,
        from_ms: i64,
        to_ms: i64,
        state: Option<&str>,
        now: i64,
    ) -> Result<Vec<HotLeadRow>, StoreError> {
        self.settle_hot_leads(now).await?;
        Ok(sqlx::query_as::<_, HotLeadRow>(&format!(
            "SELECT {COLUMNS} FROM hot_leads h JOIN leads l ON l.id = h.lead_id
             WHERE h.reported_at_ms >= $1 AND h.reported_at_ms < $2 AND ($3 IS NULL OR h.state = $3)
             ORDER BY h.reported_at_ms, h.id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(state)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the sales manager's answer at `now`, once, before the deadline. A rejection
    /// (with its reason) makes the lead `contacted` and due for a follow-up at once.
    pub async fn decide_hot_lead(
        &self,
        id: i64,
        decision: Decision,
        reason: Option<&str>,
        by: &str,
        now: i64,
    ) -> Result<HotLeadRow, DecideError> {
        self.settle_hot_leads(now).await?;
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE hot_leads SET state = $1, decided_by = $2, decided_at_ms = $3, reason = $4
             WHERE id = $5 AND state = 'pending'",
        )
        .bind(decision.state())
        .bind(by)
        .bind(now)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            drop(tx);
            return Err(match self.hot_lead(id).await? {
                None => DecideError::NotFound,
                Some(row) => DecideError::Settled(Box::new(row)),
            });
        }
        let (lead,): (i64,) = sqlx::query_as("SELECT lead_id FROM hot_leads WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let detail = match decision {
            Decision::Accept => json!({ "hot_lead": id }),
            Decision::Reject => {
                sqlx::query(
                    "UPDATE leads SET status = CASE status WHEN 'hot' THEN 'contacted'
                       ELSE status END, next_follow_up_ms = $1, updated_at_ms = $1 WHERE id = $2",
                )
                .bind(now)
                .bind(lead)
                .execute(&mut *tx)
                .await?;
                json!({ "hot_lead": id, "reason": reason })
            }
        };
        let kind = match decision {
            Decision::Accept => "hot_accepted",
            Decision::Reject => "hot_rejected",
        };
        add_event(&mut tx, lead, by, kind, Some(&detail), now).await?;
        tx.commit().await?;
        self.hot_lead(id).await?.ok_or(DecideError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::crm::LeadDraft;

    const DAY: i64 = crate::leads::DAY_MS;

    async fn store_with_lead() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir).await;
        let draft = LeadDraft {
            name: "Kanzlei Weber".into(),
            owner_agent: Some("1001".into()),
            grade: Some("A".into()),
            phones: vec!["+4930111222".into()],
            next_follow_up_ms: Some(1),
            ..LeadDraft::default()
        };
        let lead = store.create_lead(&draft, "1001").await.unwrap();
        (dir, store, lead)
    }

    fn report(lead: i64, review_by_ms: i64) -> HotReport {
        HotReport {
            lead,
            criteria: Criteria {
                timeline: "by March".into(),
                selection_team: "CFO, IT".into(),
                owner: "Ms Weber".into(),
                go_live: "2027-04-01".into(),
                fit: "payroll".into(),
            },
            note: None,
            call: None,
            review_by_ms,
        }
    }

    async fn lead_state(store: &Store, lead: i64) -> (String, Option<i64>, Vec<String>) {
        let l = store.lead(lead).await.unwrap().unwrap();
        let kinds = store
            .lead_events(lead)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        (l.status, l.next_follow_up_ms, kinds)
    }

    #[tokio::test]
    async fn a_silent_review_accepts_the_report_at_its_deadline() {
        let (_dir, store, lead) = store_with_lead().await;
        let t0 = 1_800_000_000_000;
        let r = store
            .report_hot_lead(&report(lead, t0 + 7 * DAY), "1001", t0)
            .await
            .unwrap();
        assert_eq!(r.state, "pending");
        let (status, due, _) = lead_state(&store, lead).await;
        assert_eq!((status.as_str(), due), ("hot", None), "off the work list");
        // A second report while one is open is refused.
        assert!(matches!(
            store.report_hot_lead(&report(lead, t0 + 8 * DAY), "1001", t0 + DAY).await,
            Err(ReportError::Reported { id, .. }) if id == r.id
        ));
        // A minute before the deadline it is still pending; at it, accepted by nobody.
        assert_eq!(
            store.settle_hot_leads(t0 + 7 * DAY - 60_000).await.unwrap(),
            0
        );
        let rows = store
            .hot_leads(0, i64::MAX, None, t0 + 7 * DAY)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].state.as_str(), rows[0].decided_by.as_deref()),
            ("accepted", None)
        );
        assert_eq!(rows[0].decided_at_ms, Some(t0 + 7 * DAY));
        // Too late to reject now.
        match store
            .decide_hot_lead(
                r.id,
                Decision::Reject,
                Some("no budget"),
                "9001",
                t0 + 8 * DAY,
            )
            .await
        {
            Err(DecideError::Settled(row)) => assert_eq!(row.state, "accepted"),
            other => panic!("{other:?}"),
        }
        let (_, _, kinds) = lead_state(&store, lead).await;
        assert!(kinds.ends_with(&["hot_reported".into(), "hot_accepted".into()]));
    }

    #[tokio::test]
    async fn a_rejection_returns_the_lead_to_its_telemarketer_who_may_report_again() {
        let (_dir, store, lead) = store_with_lead().await;
        let t0 = 1_800_000_000_000;
        let r = store
            .report_hot_lead(&report(lead, t0 + 7 * DAY), "1001", t0)
            .await
            .unwrap();
        let rejected = store
            .decide_hot_lead(
                r.id,
                Decision::Reject,
                Some("no budget yet"),
                "9001",
                t0 + DAY,
            )
            .await
            .unwrap();
        assert_eq!(rejected.state, "rejected");
        assert_eq!(rejected.reason.as_deref(), Some("no budget yet"));
        let (status, due, kinds) = lead_state(&store, lead).await;
        assert_eq!((status.as_str(), due), ("contacted", Some(t0 + DAY)));
        assert_eq!(kinds.last().map(String::as_str), Some("hot_rejected"));
        assert!(matches!(
            store
                .decide_hot_lead(r.id, Decision::Accept, None, "9001", t0 + DAY)
                .await,
            Err(DecideError::Settled(_))
        ));
        // The budget came: reported again, accepted.
        let again = store
            .report_hot_lead(&report(lead, t0 + 20 * DAY), "1001", t0 + 10 * DAY)
            .await
            .unwrap();
        let accepted = store
            .decide_hot_lead(again.id, Decision::Accept, None, "9001", t0 + 11 * DAY)
            .await
            .unwrap();
        assert_eq!(
            (accepted.state.as_str(), accepted.decided_by.as_deref()),
            ("accepted", Some("9001"))
        );
        assert!(matches!(
            store
                .decide_hot_lead(999, Decision::Accept, None, "9001", t0)
                .await,
            Err(DecideError::NotFound)
        ));
    }

    #[tokio::test]
    async fn closed_and_missing_leads_are_not_reported() {
        let (_dir, store, lead) = store_with_lead().await;
        assert!(matches!(
            store.report_hot_lead(&report(lead + 1, 0), "1001", 0).await,
            Err(ReportError::NoLead)
        ));
        sqlx::query("UPDATE leads SET status = 'won'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.report_hot_lead(&report(lead, 0), "1001", 0).await,
            Err(ReportError::Closed(s)) if s == "won"
        ));
    }
}
