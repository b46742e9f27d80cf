//! Outbound campaigns and their leads ([`crate::campaign`]).
//!
//! `agent` is who worked the lead last. A campaign lead is `waiting` (due from `next_at_ms`),
//! `offered` to an agent (preview: they
//! read it and the script; held until `offered_until_ms`), `calling` (the call is placed:
//! `call_id`), then `reached` (the agent's result code is the call's disposition), or
//! `exhausted` (retries used up or a wrong number), or `excluded` (on the do-not-call list, or
//! no number to call). Attempts end when their call record is written: [`Store::settle_campaign_calls`]
//! reads it.

use serde::Serialize;

use super::{Store, StoreError};
use crate::campaign::{Outcome, Retry, Step};

/// A campaign with its leads counted by state.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub script: String,
    pub mode: String,
    /// The skill group whose agents work it.
    pub skill: String,
    pub retries: i64,
    pub retry_after_s: i64,
    /// JSON list of calling-hour periods; `None`: the server's `[dialing]` hours.
    #[serde(serialize_with = "as_json")]
    pub calling_hours: Option<String>,
    pub ends_at_ms: Option<i64>,
    pub state: String,
    pub created_by: String,
    pub created_at_ms: i64,
    pub leads: i64,
    pub waiting: i64,
    pub offered: i64,
    pub calling: i64,
    pub reached: i64,
    pub exhausted: i64,
    pub excluded: i64,
    pub attempts: i64,
}

fn as_json<S: serde::Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let v: serde_json::Value = text
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null);
    serde::Serialize::serialize(&v, s)
}

const CAMPAIGN_COLUMNS: &str = "c.id, c.name, c.script, c.mode, c.skill, c.retries,
    c.retry_after_s, c.calling_hours, c.ends_at_ms, c.state, c.created_by, c.created_at_ms,
    COUNT(cl.lead_id) AS leads,
    CAST(COALESCE(SUM(CASE WHEN cl.state = 'waiting' THEN 1 ELSE 0 END), 0) AS BIGINT) AS waiting,
    CAST(COALESCE(SUM(CASE WHEN cl.state = 'offered' THEN 1 ELSE 0 END), 0) AS BIGINT) AS offered,
    CAST(COALESCE(SUM(CASE WHEN cl.state = 'calling' THEN 1 ELSE 0 END), 0) AS BIGINT) AS calling,
    CAST(COALESCE(SUM(CASE WHEN cl.state = 'reached' THEN 1 ELSE 0 END), 0) AS BIGINT) AS reached,
    CAST(COALESCE(SUM(CASE WHEN cl.state = 'exhausted' THEN 1 ELSE 0 END), 0) AS BIGINT)
      AS exhausted,
    CAST(COALESCE(SUM(CASE WHEN cl.state = 'excluded' THEN 1 ELSE 0 END), 0) AS BIGINT)
      AS excluded,
    CAST(COALESCE(SUM(cl.attempts), 0) AS BIGINT) AS attempts";

/// A new campaign, checked by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    pub name: String,
    pub script: String,
    pub mode: crate::campaign::Mode,
    pub skill: String,
    pub retry: Retry,
    pub calling_hours: Option<String>,
    pub ends_at_ms: Option<i64>,
}

/// One lead of a campaign with its result, as the results list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CampaignLeadRow {
    pub lead_id: i64,
    pub lead_name: String,
    pub phone: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_at_ms: i64,
    pub agent: Option<String>,
    pub call_id: Option<i64>,
    pub last_outcome: Option<String>,
    /// The agent's result code for the call that reached the customer.
    pub result: Option<String>,
    pub updated_at_ms: Option<i64>,
}

const LEAD_COLUMNS: &str = "cl.lead_id, l.name AS lead_name,
    (SELECT phone FROM lead_phones p WHERE p.lead_id = cl.lead_id
      ORDER BY CASE WHEN p.kind = 'primary' THEN 0 ELSE 1 END, p.phone LIMIT 1)
        AS phone,
    cl.state, cl.attempts, cl.next_at_ms, cl.agent, cl.call_id, cl.last_outcome,
    (SELECT code FROM call_dispositions d WHERE d.call_id = cl.call_id) AS result,
    cl.updated_at_ms";

/// An attempt that ended, as [`Store::settle_campaign_calls`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledAttempt {
    pub campaign: i64,
    pub lead: i64,
    pub agent: Option<String>,
    pub outcome: Outcome,
    pub step: Step,
}

/// Why a campaign was not made.
#[derive(Debug)]
pub enum CreateError {
    NameTaken,
    Store(StoreError),
}

impl From<sqlx::Error> for CreateError {
    fn from(e: sqlx::Error) -> Self {
        CreateError::Store(e.into())
    }
}

/// Which leads to add to a campaign: these ids, or those matching every given field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadFilter {
    pub ids: Option<Vec<i64>>,
    pub grade: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub owner: Option<String>,
}

impl Store {
    pub async fn create_campaign(
        &self,
        c: &NewCampaign,
        by: &str,
        now: i64,
    ) -> Result<CampaignRow, CreateError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO campaigns (name, script, mode, skill, retries, retry_after_s,
                                    calling_hours, ends_at_ms, state, created_by, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'paused', $9, $10) ON CONFLICT (name) DO NOTHING
             RETURNING id",
        )
        .bind(&c.name)
        .bind(&c.script)
        .bind(c.mode.as_str())
        .bind(&c.skill)
        .bind(i64::from(c.retry.retries))
        .bind(c.retry.spacing_ms / 1000)
        .bind(&c.calling_hours)
        .bind(c.ends_at_ms)
        .bind(by)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(id) = id else {
            return Err(CreateError::NameTaken);
        };
        self.campaign(id)
            .await
            .map_err(CreateError::Store)?
            .ok_or(CreateError::NameTaken)
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRow>, StoreError> {
        Ok(sqlx::query_as::<_, CampaignRow>(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c
             LEFT JOIN campaign_leads cl ON cl.campaign_id = c.id WHERE c.id = $1 GROUP BY c.id"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every campaign, newest first.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRow>, StoreError> {
        Ok(sqlx::query_as::<_, CampaignRow>(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c
             LEFT JOIN campaign_leads cl ON cl.campaign_id = c.id GROUP BY c.id ORDER BY c.id DESC"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    /// Sets the state (running, paused, finished); false without such a campaign or when it
    /// is finished already (a finished campaign stays finished).
    pub async fn set_campaign_state(&self, id: i64, state: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE campaigns SET state = $1 WHERE id = $2 AND state != 'finished'")
                .bind(state)
                .bind(id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Adds the leads `f` names (leads that do not exist, are closed, C or invalid are left
    /// out), due from `now`; (added, already in the campaign).
    pub async fn add_campaign_leads(
        &self,
        campaign: i64,
        f: &LeadFilter,
        now: i64,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.pool().begin().await?;
        let ids: Vec<i64> = match &f.ids {
            Some(ids) => {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    let ok: Option<(i64,)> = sqlx::query_as(
                        "SELECT id FROM leads WHERE id = $1
                           AND status NOT IN ('won', 'lost', 'invalid')
                           AND COALESCE(grade, '') NOT IN ('C', 'invalid')",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    found.extend(ok.map(|(id,)| id));
                }
                found
            }
            None => sqlx::query_as::<_, (i64,)>(
                "SELECT id FROM leads
                 WHERE status NOT IN ('won', 'lost', 'invalid')
                   AND COALESCE(grade, '') NOT IN ('C', 'invalid')
                   AND ($1 IS NULL OR grade = $1) AND ($2 IS NULL OR source = $2)
                   AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR owner_agent = $4)
                 ORDER BY id",
            )
            .bind(&f.grade)
            .bind(&f.source)
            .bind(&f.status)
            .bind(&f.owner)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect(),
        };
        let (mut added, mut already) = (0, 0);
        for id in ids {
            let done = sqlx::query(
                "INSERT INTO campaign_leads (campaign_id, lead_id, next_at_ms, updated_at_ms)
                 VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
            )
            .bind(campaign)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                added += 1;
            } else {
                already += 1;
            }
        }
        tx.commit().await?;
        Ok((added, already))
    }

    /// The lead offered to or being called by `agent` in any campaign: (campaign, lead, state).
    pub async fn agent_campaign_lead(
        &self,
        agent: &str,
    ) -> Result<Option<(i64, i64, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT campaign_id, lead_id, state FROM campaign_leads
             WHERE agent = $1 AND state IN ('offered', 'calling') LIMIT 1",
        )
        .bind(agent)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Offers `agent` the next lead due in a running campaign at `now`, holding it for them
    /// until `hold_until_ms`: the one they hold already, else the longest due (first added
    /// first). Offers nobody acted on in time go back to waiting first.
    pub async fn offer_campaign_lead(
        &self,
        campaign: i64,
        agent: &str,
        now: i64,
        hold_until_ms: i64,
    ) -> Result<Option<CampaignLeadRow>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE campaign_leads SET state = 'waiting', offered_until_ms = NULL
             WHERE state = 'offered' AND offered_until_ms < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let held: Option<(i64,)> = sqlx::query_as(
            "SELECT lead_id FROM campaign_leads
             WHERE campaign_id = $1 AND agent = $2 AND state = 'offered'",
        )
        .bind(campaign)
        .bind(agent)
        .fetch_optional(&mut *tx)
        .await?;
        let lead = match held {
            Some((lead,)) => Some(lead),
            None => {
                let next: Option<(i64,)> = sqlx::query_as(
                    "SELECT cl.lead_id FROM campaign_leads cl JOIN campaigns c ON c.id = cl.campaign_id
                     WHERE cl.campaign_id = $1 AND c.state = 'running' AND cl.state = 'waiting'
                       AND cl.next_at_ms <= $2
                     ORDER BY cl.next_at_ms, cl.lead_id LIMIT 1",
                )
                .bind(campaign)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                next.map(|(lead,)| lead)
            }
        };
        let Some(lead) = lead else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::query(
            "UPDATE campaign_leads SET state = 'offered', agent = $1, offered_until_ms = $2,
                                       updated_at_ms = $3
             WHERE campaign_id = $4 AND lead_id = $5",
        )
        .bind(agent)
        .bind(hold_until_ms)
        .bind(now)
        .bind(campaign)
        .bind(lead)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.campaign_lead(campaign, lead).await
    }

    pub async fn campaign_lead(
        &self,
        campaign: i64,
        lead: i64,
    ) -> Result<Option<CampaignLeadRow>, StoreError> {
        Ok(sqlx::query_as::<_, CampaignLeadRow>(&format!(
            "SELECT {LEAD_COLUMNS} FROM campaign_leads cl JOIN leads l ON l.id = cl.lead_id
             WHERE cl.campaign_id = $1 AND cl.lead_id = $2"
        ))
        .bind(campaign)
        .bind(lead)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every lead of a campaign with its result, in the order they were added.
    pub async fn campaign_leads(&self, campaign: i64) -> Result<Vec<CampaignLeadRow>, StoreError> {
        Ok(sqlx::query_as::<_, CampaignLeadRow>(&format!(
            "SELECT {LEAD_COLUMNS} FROM campaign_leads cl JOIN leads l ON l.id = cl.lead_id
             WHERE cl.campaign_id = $1 ORDER BY cl.lead_id"
        ))
        .bind(campaign)
        .fetch_all(self.pool())
        .await?)
    }

    /// The lead offered to `agent` is being called: `call` is its attempt. False when it is
    /// not (or no longer) offered to them.
    pub async fn campaign_lead_calling(
        &self,
        campaign: i64,
        lead: i64,
        agent: &str,
        call: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE campaign_leads SET state = 'calling', call_id = $1, attempts = attempts + 1,
                                       offered_until_ms = NULL, updated_at_ms = $2
             WHERE campaign_id = $3 AND lead_id = $4 AND agent = $5 AND state = 'offered'",
        )
        .bind(call)
        .bind(now)
        .bind(campaign)
        .bind(lead)
        .bind(agent)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back a lead offered to `agent` without a call: due again from `next_at_ms`
    /// (skipped, or the call could not be placed), or `excluded` with why (`outcome`: the
    /// do-not-call list, no number). False when it was not offered to them.
    pub async fn release_campaign_lead(
        &self,
        campaign: i64,
        lead: i64,
        agent: &str,
        excluded: Option<&str>,
        next_at_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE campaign_leads SET
                 state = CASE WHEN $1 IS NULL THEN 'waiting' ELSE 'excluded' END,
                 last_outcome = COALESCE($1, last_outcome), offered_until_ms = NULL, next_at_ms = $2,
                 updated_at_ms = $6
             WHERE campaign_id = $3 AND lead_id = $4 AND agent = $5 AND state = 'offered'",
        )
        .bind(excluded)
        .bind(next_at_ms)
        .bind(campaign)
        .bind(lead)
        .bind(agent)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Settles the attempts whose call records are written by `now`: reached, due again
    /// after the campaign's spacing, or exhausted. An attempt whose call left no record within
    /// `lost_after_ms` (the server stopped mid-call) counts as failed.
    pub async fn settle_campaign_calls(
        &self,
        now: i64,
        lost_after_ms: i64,
    ) -> Result<Vec<SettledAttempt>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Due {
            campaign_id: i64,
            lead_id: i64,
            agent: Option<String>,
            attempts: i64,
            retries: i64,
            retry_after_s: i64,
            updated_at_ms: Option<i64>,
            #[sqlx(try_from = "super::IntFlag")]
            recorded: bool,
            #[sqlx(try_from = "super::IntFlag")]
            answered: bool,
            end_cause: Option<String>,
        }
        let due: Vec<Due> = sqlx::query_as(
            "SELECT cl.campaign_id, cl.lead_id, cl.agent, cl.attempts, c.retries, c.retry_after_s,
                    cl.updated_at_ms,
                    CASE WHEN k.id IS NOT NULL THEN 1 ELSE 0 END AS recorded,
                    CASE WHEN k.answered_at_ms IS NOT NULL THEN 1 ELSE 0 END AS answered,
                    k.end_cause
             FROM campaign_leads cl JOIN campaigns c ON c.id = cl.campaign_id
             LEFT JOIN calls k ON k.id = cl.call_id AND k.ended_at_ms IS NOT NULL
             WHERE cl.state = 'calling'",
        )
        .fetch_all(self.pool())
        .await?;
        let mut settled = Vec::new();
        let mut tx = self.pool().begin().await?;
        for d in due {
            let lost = !d.recorded && now - d.updated_at_ms.unwrap_or(now) > lost_after_ms;
            if !d.recorded && !lost {
                continue;
            }
            let outcome = if lost {
                Outcome::Failed
            } else {
                Outcome::of_call(d.answered, d.end_cause.as_deref())
            };
            let retry = Retry {
                retries: u32::try_from(d.retries).unwrap_or(0),
                spacing_ms: d.retry_after_s.saturating_mul(1000),
            };
            let step = retry.after(outcome, u32::try_from(d.attempts).unwrap_or(u32::MAX), now);
            let (state, next_at) = match step {
                Step::Reached => ("reached", now),
                Step::RetryAt(t) => ("waiting", t),
                Step::Exhausted => ("exhausted", now),
            };
            sqlx::query(
                "UPDATE campaign_leads SET state = $1, last_outcome = $2, next_at_ms = $3,
                     updated_at_ms = $4
                 WHERE campaign_id = $5 AND lead_id = $6 AND state = 'calling'",
            )
            .bind(state)
            .bind(outcome.as_str())
            .bind(next_at)
            .bind(now)
            .bind(d.campaign_id)
            .bind(d.lead_id)
            .execute(&mut *tx)
            .await?;
            settled.push(SettledAttempt {
                campaign: d.campaign_id,
                lead: d.lead_id,
                agent: d.agent,
                outcome,
                step,
            });
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// For the pacer: whether the last campaign attempt `agent` made reached a customer
    /// and still waits for its result code, and when it was settled.
    pub async fn agent_campaign_wrap_up(
        &self,
        agent: &str,
    ) -> Result<(bool, Option<i64>), StoreError> {
        let last: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT state, call_id, updated_at_ms FROM campaign_leads
             WHERE agent = $1 AND attempts > 0 AND state IN ('reached', 'exhausted', 'waiting')
             ORDER BY updated_at_ms DESC LIMIT 1",
        )
        .bind(agent)
        .fetch_optional(self.pool())
        .await?;
        let Some((state, call, at)) = last else {
            return Ok((false, None));
        };
        let owes = state == "reached"
            && match call {
                Some(call) => self.disposition(call).await?.is_none(),
                None => false,
            };
        Ok((owes, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::Mode;
    use crate::store::crm::LeadDraft;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir).await;
        (dir, store)
    }

    async fn lead(store: &Store, name: &str, phone: &str, grade: &str) -> i64 {
        let d = LeadDraft {
            name: name.into(),
            grade: Some(grade.into()),
            source: Some("hq".into()),
            phones: vec![phone.into()],
            ..LeadDraft::default()
        };
        store.create_lead(&d, "9001").await.unwrap()
    }

    fn campaign(name: &str) -> NewCampaign {
        NewCampaign {
            name: name.into(),
            script: "Hello, this is ...".into(),
            mode: Mode::Preview,
            skill: "sales".into(),
            retry: Retry {
                retries: 1,
                spacing_ms: 60_000,
            },
            calling_hours: None,
            ends_at_ms: None,
        }
    }

    /// A call record as the writer leaves it when the call ends.
    async fn ended_call(store: &Store, id: i64, agent: &str, answered: bool, cause: &str) {
        sqlx::query(
            "INSERT INTO calls (id, sip_call_id, direction, from_uri, to_uri, dialed, agent,
                                offered_at_ms, answered_at_ms, ended_at_ms, end_cause)
             VALUES ($1, 'x', 'outbound', 'sip:' || $2 || '@h', 'sip:n@t', 'n', NULL, 1, $3, 2, $4)",
        )
        .bind(id)
        .bind(agent)
        .bind(answered.then_some(1_i64))
        .bind(cause)
        .execute(store.pool())
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn leads_are_offered_in_turn_and_a_busy_one_comes_back_after_the_spacing() {
        let (_dir, store) = store().await;
        let a = lead(&store, "A", "+4930100", "A").await;
        let b = lead(&store, "B", "+4930200", "B").await;
        let _c = lead(&store, "C", "+4930300", "C").await;
        let c = store
            .create_campaign(&campaign("renewals"), "9001", 0)
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_campaign(&campaign("renewals"), "9001", 0)
                .await,
            Err(CreateError::NameTaken)
        ));
        // Grade C leads get no agent calls.
        let f = LeadFilter {
            source: Some("hq".into()),
            ..LeadFilter::default()
        };
        assert_eq!(
            store.add_campaign_leads(c.id, &f, 1000).await.unwrap(),
            (2, 0)
        );
        assert_eq!(
            store.add_campaign_leads(c.id, &f, 1000).await.unwrap(),
            (0, 2)
        );
        // Paused: nothing is offered.
        assert_eq!(
            store
                .offer_campaign_lead(c.id, "1001", 2000, 9000)
                .await
                .unwrap(),
            None
        );
        assert!(store.set_campaign_state(c.id, "running").await.unwrap());
        let first = store
            .offer_campaign_lead(c.id, "1001", 2000, 9000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.lead_id, first.phone.as_deref()),
            (a, Some("+4930100"))
        );
        // Asked again, the agent keeps theirs; another agent gets the next.
        let again = store
            .offer_campaign_lead(c.id, "1001", 2100, 9000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.lead_id, a);
        let second = store
            .offer_campaign_lead(c.id, "1002", 2100, 9000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.lead_id, b);
        assert_eq!(
            store
                .offer_campaign_lead(c.id, "1003", 2100, 9000)
                .await
                .unwrap(),
            None
        );
        // Bob skips his: due again later. An offer nobody acts on lapses.
        assert!(
            store
                .release_campaign_lead(c.id, b, "1002", None, 50_000, 2200)
                .await
                .unwrap()
        );
        assert!(
            !store
                .release_campaign_lead(c.id, b, "1002", None, 50_000, 2200)
                .await
                .unwrap()
        );
        // Alice calls hers: the customer is busy.
        assert!(
            store
                .campaign_lead_calling(c.id, a, "1001", 77, 3000)
                .await
                .unwrap()
        );
        assert!(
            store
                .settle_campaign_calls(4000, 600_000)
                .await
                .unwrap()
                .is_empty()
        );
        ended_call(&store, 77, "1001", false, "agent_busy").await;
        let settled = store.settle_campaign_calls(5000, 600_000).await.unwrap();
        assert_eq!(settled.len(), 1);
        assert_eq!(
            (settled[0].outcome, settled[0].step),
            (Outcome::Busy, Step::RetryAt(65_000))
        );
        let row = store.campaign_lead(c.id, a).await.unwrap().unwrap();
        assert_eq!(
            (
                row.state.as_str(),
                row.attempts,
                row.last_outcome.as_deref()
            ),
            ("waiting", 1, Some("busy"))
        );
        // Before the spacing only B (skipped, due at 50 s) comes; then A again.
        let next = store
            .offer_campaign_lead(c.id, "1001", 60_000, 70_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.lead_id, b);
        assert!(
            store
                .release_campaign_lead(c.id, b, "1001", Some("do_not_call"), 60_000, 60_000)
                .await
                .unwrap()
        );
        let retry = store
            .offer_campaign_lead(c.id, "1001", 65_000, 70_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(retry.lead_id, a);
        // The retry connects; the agent owes the result code until it is recorded.
        assert!(
            store
                .campaign_lead_calling(c.id, a, "1001", 78, 66_000)
                .await
                .unwrap()
        );
        ended_call(&store, 78, "1001", true, "agent_hangup").await;
        let settled = store.settle_campaign_calls(67_000, 600_000).await.unwrap();
        assert_eq!(settled[0].step, Step::Reached);
        assert_eq!(
            store.agent_campaign_wrap_up("1001").await.unwrap(),
            (true, Some(67_000))
        );
        store
            .record_disposition(78, "1001", "reached", None, Some(a), None)
            .await
            .unwrap();
        assert_eq!(
            store.agent_campaign_wrap_up("1001").await.unwrap(),
            (false, Some(67_000))
        );
        let all = store.campaign_leads(c.id).await.unwrap();
        let summary: Vec<_> = all
            .iter()
            .map(|r| (r.state.as_str(), r.attempts, r.result.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [("reached", 2, Some("reached")), ("excluded", 0, None)]
        );
        let c = store.campaign(c.id).await.unwrap().unwrap();
        assert_eq!((c.leads, c.reached, c.excluded, c.attempts), (2, 1, 1, 2));
    }

    #[tokio::test]
    async fn retries_run_out_and_lost_calls_count_as_failed() {
        let (_dir, store) = store().await;
        let a = lead(&store, "A", "+4930100", "A").await;
        let c = store
            .create_campaign(&campaign("x"), "9001", 0)
            .await
            .unwrap();
        let ids = LeadFilter {
            ids: Some(vec![a, 999]),
            ..LeadFilter::default()
        };
        assert_eq!(
            store.add_campaign_leads(c.id, &ids, 0).await.unwrap(),
            (1, 0)
        );
        store.set_campaign_state(c.id, "running").await.unwrap();
        // First attempt: the server stopped before the call was recorded.
        store
            .offer_campaign_lead(c.id, "1001", 0, 10)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .campaign_lead_calling(c.id, a, "1001", 5, 1)
                .await
                .unwrap()
        );
        assert!(
            store
                .settle_campaign_calls(1000, 600_000)
                .await
                .unwrap()
                .is_empty()
        );
        let s = store.settle_campaign_calls(700_000, 600_000).await.unwrap();
        assert_eq!(
            (s[0].outcome, s[0].step),
            (Outcome::Failed, Step::RetryAt(760_000))
        );
        // Second (the one retry): no answer. Exhausted.
        store
            .offer_campaign_lead(c.id, "1001", 760_000, 800_000)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .campaign_lead_calling(c.id, a, "1001", 6, 760_001)
                .await
                .unwrap()
        );
        ended_call(&store, 6, "1001", false, "no_answer").await;
        let s = store.settle_campaign_calls(770_000, 600_000).await.unwrap();
        assert_eq!(s[0].step, Step::Exhausted);
        assert_eq!(
            store
                .offer_campaign_lead(c.id, "1001", 900_000, 1)
                .await
                .unwrap(),
            None
        );
        // Finished is for good.
        assert!(store.set_campaign_state(c.id, "finished").await.unwrap());
        assert!(!store.set_campaign_state(c.id, "running").await.unwrap());
    }
}
