//! Voicemails as agents and supervisors list them, and marking them heard.

use serde::Serialize;

use super::{Store, StoreError, now_ms};

/// One voicemail as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct VoicemailRow {
    pub id: i64,
    pub call_id: i64,
    pub mailbox: String,
    pub caller: String,
    pub lead_id: Option<i64>,
    pub path: String,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub heard_at_ms: Option<i64>,
    pub heard_by: Option<String>,
}

impl Store {
    /// Voicemails, newest first, optionally of one box and only the unheard ones.
    pub async fn voicemails(
        &self,
        mailbox: Option<&str>,
        unheard_only: bool,
    ) -> Result<Vec<VoicemailRow>, StoreError> {
        Ok(sqlx::query_as::<_, VoicemailRow>(
            "SELECT id, call_id, mailbox, caller, lead_id, path, started_at_ms, duration_ms,
                    heard_at_ms, heard_by
             FROM voicemails
             WHERE ($1 IS NULL OR mailbox = $2) AND ($3 = 0 OR heard_at_ms IS NULL)
             ORDER BY started_at_ms DESC, id DESC LIMIT 500",
        )
        .bind(mailbox)
        .bind(mailbox)
        .bind(i64::from(unheard_only))
        .fetch_all(self.pool())
        .await?)
    }

    /// Marks a voicemail heard by `by` (the first listener is kept). False: no such id.
    pub async fn mark_voicemail_heard(&self, id: i64, by: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE voicemails SET heard_at_ms = COALESCE(heard_at_ms, $1),
                                   heard_by = COALESCE(heard_by, $2)
             WHERE id = $3",
        )
        .bind(now_ms())
        .bind(by)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
