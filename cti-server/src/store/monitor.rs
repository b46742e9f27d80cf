//! The audit log of monitor sessions (listen, whisper, barge), as supervisors and auditors
//! read it.

use serde::Serialize;

use super::{Store, StoreError};

/// One monitor session as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MonitorSessionRow {
    pub id: i64,
    pub call_id: i64,
    pub monitored_call_id: i64,
    pub supervisor: String,
    pub agent: String,
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    /// JSON text: `[{"at_ms": .., "mode": ".."}]`.
    pub modes: String,
    #[sqlx(try_from = "super::IntFlag")]
    pub connected: bool,
    pub outcome: String,
}

impl Store {
    /// Monitor sessions, newest first, optionally of one agent or one supervisor.
    pub async fn monitor_sessions(
        &self,
        agent: Option<&str>,
        supervisor: Option<&str>,
    ) -> Result<Vec<MonitorSessionRow>, StoreError> {
        Ok(sqlx::query_as::<_, MonitorSessionRow>(
            "SELECT id, call_id, monitored_call_id, supervisor, agent, started_at_ms,
                    ended_at_ms, modes, connected, outcome
             FROM monitor_sessions
             WHERE ($1 IS NULL OR agent = $2) AND ($3 IS NULL OR supervisor = $4)
             ORDER BY started_at_ms DESC, id DESC LIMIT 500",
        )
        .bind(agent)
        .bind(agent)
        .bind(supervisor)
        .bind(supervisor)
        .fetch_all(self.pool())
        .await?)
    }
}
