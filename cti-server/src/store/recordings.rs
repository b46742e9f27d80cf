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
     r.overrun_ms, r.written_ms, r.error, r.markers, c.agent, c.from_uri
     FROM recordings r LEFT JOIN calls c ON c.id = r.call_id";

impl Store {
    /// Recordings, newest first: of one call, or all (at most 500).
    pub async fn recordings(&self, call_id: Option<i64>) -> Result<Vec<RecordingRow>, StoreError> {
        Ok(sqlx::query_as::<_, RecordingRow>(&format!(
            "SELECT {COLUMNS} WHERE (? IS NULL OR r.call_id = ?)
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
            sqlx::query_as::<_, RecordingRow>(&format!("SELECT {COLUMNS} WHERE r.id = ?"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
