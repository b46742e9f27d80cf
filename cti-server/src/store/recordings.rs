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
}

const COLUMNS: &str = "id, call_id, path, started_at_ms, duration_ms, bytes, sha256, overrun_ms,
     written_ms, error, markers";

impl Store {
    /// Recordings, newest first: of one call, or all (at most 500).
    pub async fn recordings(&self, call_id: Option<i64>) -> Result<Vec<RecordingRow>, StoreError> {
        Ok(sqlx::query_as::<_, RecordingRow>(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE (? IS NULL OR call_id = ?)
             ORDER BY started_at_ms DESC, id DESC LIMIT 500"
        ))
        .bind(call_id)
        .bind(call_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// One recording by id.
    pub async fn recording(&self, id: i64) -> Result<Option<RecordingRow>, StoreError> {
        Ok(sqlx::query_as::<_, RecordingRow>(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }
}
