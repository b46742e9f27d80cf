//! The lead reports' figures: the business funnel (leads → contacted → hot → appointments →
//! visits → deals) by month and agent or source, the follow-up compliance (the 24-hour
//! first-contact rule and overdue follow-ups) by agent and source, and the calls agents
//! placed. Leads count in the month they were created; their later progress counts with
//! them (a cohort view, as the managers' monthly funnel sheets do).

use std::collections::BTreeMap;

use super::{Store, StoreError};

/// One funnel row: (month `YYYY-MM`, owner, source) and its counts.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct FunnelRow {
    pub month: String,
    pub agent: String,
    pub source: String,
    pub leads: i64,
    pub contacted: i64,
    /// Graded H or A.
    pub hot: i64,
    /// With a showroom visit booked.
    pub appointments: i64,
    /// Whose visit took place (handed over).
    pub visits: i64,
    /// Status won.
    pub deals: i64,
}

/// First contacts and follow-ups of the leads created in a range, for one agent and source.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct FollowUpRow {
    pub agent: String,
    pub source: String,
    /// Leads under the 24-hour rule.
    pub first_contacts_due: i64,
    pub in_time: i64,
    pub late: i64,
    /// Deadline passed without a contact.
    pub missed: i64,
    /// Deadline still ahead, no contact yet.
    pub pending: i64,
    /// Leads (still worked) whose next follow-up date has passed.
    pub overdue_follow_ups: i64,
}

/// One call placed out through the trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedCall {
    pub agent: String,
    pub answered: bool,
    pub end_cause: Option<String>,
    pub talk_ms: i64,
}

impl Store {
    /// The funnel of the leads created in `[from_ms, to_ms)`, by month (UTC), owner and
    /// source; unowned leads and leads without a source under `""`.
    pub async fn funnel(&self, from_ms: i64, to_ms: i64) -> Result<Vec<FunnelRow>, StoreError> {
        let count = super::count_if;
        let sql = format!(
            "SELECT {month} AS month,
                    COALESCE(l.owner_agent, '') AS agent, COALESCE(l.source, '') AS source,
                    COUNT(*) AS leads,
                    {contacted} AS contacted,
                    {hot} AS hot,
                    {appointments} AS appointments,
                    {visits} AS visits,
                    {deals} AS deals
             FROM leads l
             WHERE l.created_at_ms >= $1 AND l.created_at_ms < $2
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            month = self.month_of("l.created_at_ms"),
            contacted = count("l.first_contact_at_ms IS NOT NULL"),
            hot = count("COALESCE(l.grade, '') IN ('H', 'A')"),
            appointments = count("EXISTS (SELECT 1 FROM appointments a WHERE a.lead_id = l.id)"),
            visits = count(
                "EXISTS (SELECT 1 FROM appointments a WHERE a.lead_id = l.id AND a.state = 'shown')"
            ),
            deals = count("l.status = 'won'"),
        );
        Ok(sqlx::query_as::<_, FunnelRow>(&sql)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(self.pool())
            .await?)
    }

    /// First-contact and follow-up figures of the leads created in `[from_ms, to_ms)`, by
    /// owner and source, at `now_ms`.
    pub async fn follow_ups(
        &self,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<FollowUpRow>, StoreError> {
        let count = super::count_if;
        let sql = format!(
            "SELECT COALESCE(owner_agent, '') AS agent, COALESCE(source, '') AS source,
                    {due} AS first_contacts_due,
                    {in_time} AS in_time,
                    {late} AS late,
                    {missed} AS missed,
                    {pending} AS pending,
                    {overdue} AS overdue_follow_ups
             FROM leads
             WHERE created_at_ms >= $2 AND created_at_ms < $3
             GROUP BY 1, 2 ORDER BY 1, 2",
            due = count("first_contact_due_ms IS NOT NULL"),
            in_time = count(
                "first_contact_at_ms IS NOT NULL AND first_contact_at_ms <= first_contact_due_ms"
            ),
            late = count("first_contact_at_ms > first_contact_due_ms"),
            missed = count(
                "first_contact_due_ms IS NOT NULL AND first_contact_at_ms IS NULL
                 AND first_contact_due_ms < $1"
            ),
            pending = count("first_contact_due_ms >= $1 AND first_contact_at_ms IS NULL"),
            overdue = count(
                "next_follow_up_ms < $1 AND status NOT IN ('won', 'lost', 'invalid')
                 AND COALESCE(grade, '') NOT IN ('C', 'invalid')"
            ),
        );
        Ok(sqlx::query_as::<_, FollowUpRow>(&sql)
            .bind(now_ms)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(self.pool())
            .await?)
    }

    /// The calls placed out through the trunk in `[from_ms, to_ms)`, with who placed them.
    pub async fn placed_calls(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<PlacedCall>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            from_uri: String,
            answered_at_ms: Option<i64>,
            ended_at_ms: Option<i64>,
            end_cause: Option<String>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT from_uri, answered_at_ms, ended_at_ms, end_cause FROM calls
             WHERE direction = 'outbound' AND offered_at_ms >= $1 AND offered_at_ms < $2",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(PlacedCall {
                    agent: super::queues::uri_user(&r.from_uri)?.to_string(),
                    answered: r.answered_at_ms.is_some(),
                    end_cause: r.end_cause,
                    talk_ms: match (r.answered_at_ms, r.ended_at_ms) {
                        (Some(a), Some(e)) => (e - a).max(0),
                        _ => 0,
                    },
                })
            })
            .collect())
    }
}

/// Funnel rows summed by `key` (month and agent, or month and source): one row per key.
pub fn funnel_by(
    rows: &[FunnelRow],
    key: impl Fn(&FunnelRow) -> (String, String),
) -> BTreeMap<(String, String), FunnelRow> {
    let mut out: BTreeMap<(String, String), FunnelRow> = BTreeMap::new();
    for r in rows {
        let e = out.entry(key(r)).or_default();
        e.leads += r.leads;
        e.contacted += r.contacted;
        e.hot += r.hot;
        e.appointments += r.appointments;
        e.visits += r.visits;
        e.deals += r.deals;
    }
    out
}

/// Follow-up rows summed by `key` (agent or source): one row per key.
pub fn follow_ups_by(
    rows: &[FollowUpRow],
    key: impl Fn(&FollowUpRow) -> String,
) -> BTreeMap<String, FollowUpRow> {
    let mut out: BTreeMap<String, FollowUpRow> = BTreeMap::new();
    for r in rows {
        let k = key(r);
        let e = out.entry(k).or_default();
        e.first_contacts_due += r.first_contacts_due;
        e.in_time += r.in_time;
        e.late += r.late;
        e.missed += r.missed;
        e.pending += r.pending;
        e.overdue_follow_ups += r.overdue_follow_ups;
    }
    out
}

impl FollowUpRow {
    /// First contacts made in time over those whose deadline has come, in percent; `None`
    /// while none has.
    pub fn rate_pct(&self) -> Option<f64> {
        let decided = self.in_time + self.late + self.missed;
        (decided > 0).then(|| 100.0 * self.in_time as f64 / decided as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::appointments::{Booking, Outcome};
    use crate::store::crm::LeadDraft;
    use serde_json::json;

    const DAY: i64 = 86_400_000;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir).await;
        (dir, store)
    }

    async fn lead(s: &Store, name: &str, owner: &str, source: &str, grade: &str) -> i64 {
        let now = crate::store::now_ms();
        let d = LeadDraft {
            name: name.into(),
            // A number of its own per name: its first letters' codes.
            phones: vec![format!(
                "+4930{}",
                name.bytes()
                    .take(4)
                    .map(|b| format!("{b:03}"))
                    .collect::<String>()
            )],
            email: None,
            company: None,
            grade: Some(grade.into()),
            source: Some(source.into()),
            owner_agent: Some(owner.into()),
            customer_no: None,
            product: None,
            custom: None,
            next_follow_up_ms: None,
            first_contact_due_ms: crate::leads::first_contact_due(Some(source), now),
        };
        s.create_lead(&d, "test").await.unwrap()
    }

    #[tokio::test]
    async fn the_funnel_counts_each_step_by_month_and_agent_or_source() {
        let (_d, s) = store().await;
        let now = crate::store::now_ms();
        let anna = lead(&s, "Anna", "1001", "web", "H").await;
        let ben = lead(&s, "Ben", "1001", "hq", "B").await;
        let _cleo = lead(&s, "Cleo", "1002", "web", "C").await;
        s.record_contact(anna, "1001", &json!({"result": "reached"}), None)
            .await
            .unwrap();
        s.record_contact(ben, "1001", &json!({"result": "reached"}), None)
            .await
            .unwrap();
        let booking = |lead| Booking {
            lead,
            at_ms: now + DAY,
            place: None,
            note: None,
            call: None,
        };
        let a = s
            .book_appointment(&booking(anna), "1001")
            .await
            .unwrap()
            .unwrap();
        s.book_appointment(&booking(ben), "1001").await.unwrap();
        s.appointment_outcome(a.id, Outcome::Shown, Some("Max"), "9001")
            .await
            .unwrap();
        sqlx::query("UPDATE leads SET status = 'won' WHERE id = $1")
            .bind(anna)
            .execute(s.pool())
            .await
            .unwrap();

        let rows = s.funnel(now - DAY, now + DAY).await.unwrap();
        let month = rows[0].month.clone();
        assert_eq!(month.len(), 7, "{month}");
        let by_agent = funnel_by(&rows, |r| (r.month.clone(), r.agent.clone()));
        let counts = |r: &FunnelRow| {
            (
                r.leads,
                r.contacted,
                r.hot,
                r.appointments,
                r.visits,
                r.deals,
            )
        };
        assert_eq!(
            counts(&by_agent[&(month.clone(), "1001".into())]),
            (2, 2, 1, 2, 1, 1)
        );
        assert_eq!(
            counts(&by_agent[&(month.clone(), "1002".into())]),
            (1, 0, 0, 0, 0, 0)
        );
        let by_source = funnel_by(&rows, |r| (r.month.clone(), r.source.clone()));
        let keys: Vec<(&str, i64, i64)> = by_source
            .iter()
            .map(|((_, source), r)| (source.as_str(), r.leads, r.deals))
            .collect();
        assert_eq!(keys, vec![("hq", 1, 0), ("web", 2, 1)]);
        // Outside the range: nothing.
        assert!(s.funnel(now + DAY, now + 2 * DAY).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn first_contacts_are_in_time_late_missed_or_pending() {
        let (_d, s) = store().await;
        let now = crate::store::now_ms();
        let in_time = lead(&s, "Dora", "1001", "web", "A").await;
        let late = lead(&s, "Emil", "1001", "web", "A").await;
        let missed = lead(&s, "Fritz", "1001", "hq", "A").await;
        let _pending = lead(&s, "Gerd", "1001", "hq", "A").await;
        s.record_contact(
            in_time,
            "1001",
            &json!({"result": "reached"}),
            Some(now - DAY),
        )
        .await
        .unwrap();
        s.record_contact(late, "1001", &json!({"result": "reached"}), None)
            .await
            .unwrap();
        // Move the deadlines: Emil's passed before his contact, Fritz's without one.
        for (id, due) in [(late, now - DAY), (missed, now - DAY)] {
            sqlx::query("UPDATE leads SET first_contact_due_ms = $1 WHERE id = $2")
                .bind(due)
                .bind(id)
                .execute(s.pool())
                .await
                .unwrap();
        }
        let rows = s.follow_ups(now - DAY, now + DAY, now + 1).await.unwrap();
        let agent = follow_ups_by(&rows, |r| r.agent.clone());
        let a = &agent["1001"];
        assert_eq!(
            (a.first_contacts_due, a.in_time, a.late, a.missed, a.pending),
            (4, 1, 1, 1, 1)
        );
        assert_eq!(a.overdue_follow_ups, 1, "Dora's agreed date has passed");
        assert_eq!(a.rate_pct().map(|r| r.round()), Some(33.0));
        let source = follow_ups_by(&rows, |r| r.source.clone());
        assert_eq!((source["web"].in_time, source["web"].late), (1, 1));
        assert_eq!((source["hq"].missed, source["hq"].pending), (1, 1));
        assert_eq!(source["hq"].rate_pct(), Some(0.0));
    }
}
