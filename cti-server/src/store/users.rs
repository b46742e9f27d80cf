//! Users, login sessions and the audit log.

use serde::Serialize;

use super::{Store, StoreError, now_ms};
use crate::access::Role;
use crate::config::AgentConfig;

/// One user as the store keeps them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub password_hash: String,
}

impl UserRow {
    pub fn role(&self) -> Role {
        match self.role.as_str() {
            "admin" => Role::Admin,
            "supervisor" => Role::Supervisor,
            _ => Role::Agent,
        }
    }
}

/// One audit log entry as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source: Option<String>,
}

impl Store {
    /// Makes a user of every configured agent that has none, with the configuration's
    /// password as the first web password (hashed); keeps roles as the configuration says.
    /// A password changed since (`set_password`) stays.
    pub async fn sync_users(&self, agents: &[AgentConfig]) -> Result<(), StoreError> {
        let now = now_ms();
        for a in agents {
            let known: Option<(String,)> = sqlx::query_as("SELECT name FROM users WHERE name = $1")
                .bind(&a.extension)
                .fetch_optional(&self.pool)
                .await?;
            if known.is_some() {
                sqlx::query(
                    "UPDATE users SET role = $1, updated_at_ms = $2 WHERE name = $3 AND role <> $4",
                )
                .bind(a.role.as_str())
                .bind(now)
                .bind(&a.extension)
                .bind(a.role.as_str())
                .execute(&self.pool)
                .await?;
                continue;
            }
            let password = a.password.clone();
            let hash = tokio::task::spawn_blocking(move || crate::users::hash_password(&password))
                .await
                .map_err(|e| StoreError::Other(format!("hashing: {e}")))?;
            sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at_ms, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&a.extension)
            .bind(a.role.as_str())
            .bind(hash)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(sqlx::query_as::<_, UserRow>(
            "SELECT name, role, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores a new password hash; every session of the user ends (a stolen token stops
    /// working when the password is changed).
    pub async fn set_password(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at_ms = $2 WHERE name = $3")
                .bind(hash)
                .bind(now_ms())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn create_session(
        &self,
        token_sha256: &str,
        user: &str,
        expires_at_ms: i64,
        source: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (token_sha256, user_name, created_at_ms, expires_at_ms, source)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_sha256)
        .bind(user)
        .bind(now)
        .bind(expires_at_ms)
        .bind(source)
        .execute(&self.pool)
        .await?;
        // Expired sessions go at each login.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of an unexpired session.
    pub async fn session_user(&self, token_sha256: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(sqlx::query_as::<_, UserRow>(
            "SELECT u.name, u.role, u.password_hash FROM sessions s
             JOIN users u ON u.name = s.user_name
             WHERE s.token_sha256 = $1 AND s.expires_at_ms > $2",
        )
        .bind(token_sha256)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn end_session(&self, token_sha256: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(token_sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Writes an audit log entry at once (not through the batching writer: an access that
    /// is not on record must not happen, so the caller waits for this).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
        source: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor, action, target, detail, source)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .bind(source)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Audit log entries, newest first, optionally of one actor or action.
    pub async fn audit_log(
        &self,
        actor: Option<&str>,
        action: Option<&str>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT id, at_ms, actor, action, target, detail, source FROM audit_log
             WHERE ($1 IS NULL OR actor = $2) AND ($3 IS NULL OR action = $4)
             ORDER BY at_ms DESC, id DESC LIMIT 1000",
        )
        .bind(actor)
        .bind(actor)
        .bind(action)
        .bind(action)
        .fetch_all(&self.pool)
        .await?)
    }
}
