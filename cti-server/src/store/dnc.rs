//! The do-not-call list: numbers in E.164 that no agent may call.

use serde::Serialize;

use super::{Store, StoreError, now_ms};

/// One number on the list.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DncEntry {
    pub number: String,
    pub reason: Option<String>,
    pub added_by: String,
    pub added_at_ms: i64,
}

impl Store {
    /// Puts `number` (E.164) on the list; false when it was there already (unchanged).
    pub async fn dnc_add(
        &self,
        number: &str,
        reason: Option<&str>,
        by: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO dnc_numbers (number, reason, added_by, added_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (number) DO NOTHING",
        )
        .bind(number)
        .bind(reason)
        .bind(by)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes `number` off the list; false when it was not on it.
    pub async fn dnc_remove(&self, number: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM dnc_numbers WHERE number = $1")
            .bind(number)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The entry for `number`, if it is on the list.
    pub async fn dnc_entry(&self, number: &str) -> Result<Option<DncEntry>, StoreError> {
        Ok(sqlx::query_as::<_, DncEntry>(
            "SELECT number, reason, added_by, added_at_ms FROM dnc_numbers WHERE number = $1",
        )
        .bind(number)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The whole list, newest first.
    pub async fn dnc_list(&self) -> Result<Vec<DncEntry>, StoreError> {
        Ok(sqlx::query_as::<_, DncEntry>(
            "SELECT number, reason, added_by, added_at_ms FROM dnc_numbers
             ORDER BY added_at_ms DESC, number",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn numbers_go_on_and_off_the_list_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir).await;
        assert!(
            store
                .dnc_add("+4930111001", Some("asked"), "1001")
                .await
                .unwrap()
        );
        assert!(!store.dnc_add("+4930111001", None, "1002").await.unwrap());
        let e = store.dnc_entry("+4930111001").await.unwrap().unwrap();
        assert_eq!(
            (e.reason.as_deref(), e.added_by.as_str()),
            (Some("asked"), "1001")
        );
        assert_eq!(store.dnc_list().await.unwrap().len(), 1);
        assert!(store.dnc_remove("+4930111001").await.unwrap());
        assert!(!store.dnc_remove("+4930111001").await.unwrap());
        assert_eq!(store.dnc_entry("+4930111001").await.unwrap(), None);
    }
}
