//! The call recordings index, as the API lists it.

use serde::Serialize;

use super::{Store, StoreError};

/// One recording as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecordingRow {
    pub id: i64,
    pub call_id: i64,
    pub path: String,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub overrun_ms: i64,
    /// Audio in the file when the recording stopped early (else `None`: all of it).
    pub written_ms: Option<i64>,
    /// Why it stopped early (disk full, file gone).
    pub error: Option<String>,
    /// Pause and resume markers, JSON: `[{"at_ms": offset in the file, "paused": bool}]`.
    pub markers: Option<String>,
    /// The call's agent (extension, or the external number an agent called), once the call
    /// is on record.
    pub agent: Option<String>,
    /// The call's caller (From URI).
    pub from_uri: Option<String>,
    /// Kept whatever the retention says.
    #[sqlx(try_from = "super::IntFlag")]
    pub legal_hold: bool,
    pub hold_reason: Option<String>,
    /// When retention deleted the file.
    pub deleted_at_ms: Option<i64>,
    /// A supervisor's track (what they said while monitoring): their call's id.
    pub monitor_call_id: Option<i64>,
    /// The call's services, space-separated (`flow:main queue:sales`).
    #[serde(skip)]
    pub services: Option<String>,
}

impl RecordingRow {
    /// The last queue the call went through.
    pub fn queue(&self) -> Option<&str> {
        self.services
            .as_deref()?
            .split_whitespace()
            .rev()
            .find_map(|s| s.strip_prefix("queue:"))
    }
}

/// A recording retention may delete.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RetentionCandidate {
    pub id: i64,
    pub call_id: i64,
    pub path: String,
    pub started_at_ms: i64,
    pub services: Option<String>,
}

impl RecordingRow {
    /// The staff on the call: its agent, and the caller when an agent placed it.
    pub fn parties(&self) -> Vec<&str> {
        let caller = self
            .from_uri
            .as_deref()
            .and_then(|u| u.split_once("sip:"))
            .and_then(|(_, rest)| rest.split(['@', ';', '>']).next());
        self.agent.as_deref().into_iter().chain(caller).collect()
    }
}

const COLUMNS: &str = "r.id, r.call_id, r.path, r.started_at_ms, r.duration_ms, r.bytes, r.sha256,
     r.overrun_ms, r.written_ms, r.error, r.markers, c.agent, c.from_uri, r.legal_hold,
     r.hold_reason, r.deleted_at_ms, r.monitor_call_id, c.services
     FROM recordings r LEFT JOIN calls c ON c.id = r.call_id";

impl Store {
    /// Recordings, newest first: of one call, or all (at most 500).
    pub async fn recordings(&self, call_id: Option<i64>) -> Result<Vec<RecordingRow>, StoreError> {
        Ok(sqlx::query_as::<_, RecordingRow>(&format!(
            "SELECT {COLUMNS} WHERE ($1 IS NULL OR r.call_id = $2)
             ORDER BY r.started_at_ms DESC, r.id DESC LIMIT 500"
        ))
        .bind(call_id)
        .bind(call_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// One recording by id.
    pub async fn recording(&self, id: i64) -> Result<Option<RecordingRow>, StoreError> {
        Ok(
            sqlx::query_as::<_, RecordingRow>(&format!("SELECT {COLUMNS} WHERE r.id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The leads whose timeline has this call.
    pub async fn leads_of_call(&self, call_id: i64) -> Result<Vec<i64>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT lead_id FROM lead_events
             WHERE kind = 'call' AND {} = $1
             ORDER BY lead_id",
            self.json_integer("detail", "call_id")
        );
        let rows: Vec<(i64,)> = sqlx::query_as(&sql)
            .bind(call_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Recordings not deleted and not on hold, with their call's services.
    pub async fn retention_candidates(&self) -> Result<Vec<RetentionCandidate>, StoreError> {
        Ok(sqlx::query_as::<_, RetentionCandidate>(
            "SELECT r.id, r.call_id, r.path, r.started_at_ms, c.services
             FROM recordings r LEFT JOIN calls c ON c.id = r.call_id
             WHERE r.deleted_at_ms IS NULL AND r.legal_hold = 0",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Marks a recording deleted unless a hold came meanwhile: true when marked (the file
    /// may go then).
    pub async fn mark_recording_deleted(&self, id: i64, at_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE recordings SET deleted_at_ms = $1
             WHERE id = $2 AND legal_hold = 0 AND deleted_at_ms IS NULL",
        )
        .bind(at_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes the mark back (the file could not be deleted).
    pub async fn unmark_recording_deleted(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET deleted_at_ms = NULL WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Puts a legal hold on a recording or lifts it; false: no such recording, or its file
    /// is gone already.
    pub async fn set_legal_hold(
        &self,
        id: i64,
        hold: bool,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE recordings SET legal_hold = $1, hold_reason = $2
             WHERE id = $3 AND deleted_at_ms IS NULL",
        )
        .bind(i64::from(hold))
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }
}
