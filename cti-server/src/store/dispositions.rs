//! Calls' dispositions (the result codes agents record in wrap-up) and what a disposition
//! needs to know of a finished call.

use super::{Store, StoreError, now_ms};

impl Store {
    /// A finished call's agent, the agent who placed it (a call out), and its last queue;
    /// `None` when no such call is recorded (yet).
    #[allow(clippy::type_complexity)]
    pub async fn call_parties(
        &self,
        id: i64,
    ) -> Result<Option<(Option<String>, Option<String>, Option<String>)>, StoreError> {
        let row: Option<(Option<String>, String, String, Option<String>)> =
            sqlx::query_as("SELECT agent, direction, from_uri, services FROM calls WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(agent, direction, from, services)| {
            let placed_by = (direction == "outbound")
                .then(|| super::queues::uri_user(&from).map(str::to_string))
                .flatten();
            let queue = services.as_deref().and_then(|s| {
                s.split(' ')
                    .rev()
                    .find_map(|x| x.strip_prefix("queue:"))
                    .map(str::to_string)
            });
            (agent, placed_by, queue)
        }))
    }

    /// Records a call's disposition; false when it has one already (unchanged).
    pub async fn record_disposition(
        &self,
        call: i64,
        agent: &str,
        code: &str,
        queue: Option<&str>,
        lead: Option<i64>,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO call_dispositions (call_id, agent, code, queue, lead_id, note, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call)
        .bind(agent)
        .bind(code)
        .bind(queue)
        .bind(lead)
        .bind(note)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A call's disposition: (agent, code).
    pub async fn disposition(&self, call: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT agent, code FROM call_dispositions WHERE call_id = $1")
                .bind(call)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
