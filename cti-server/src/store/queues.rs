//! Queue figures from the stored queue events, for the floor's "today" columns. The same
//! rule as [`crate::acd::stats::queue_stats`]: a caller counts when they leave the queue;
//! the service level is answered within the threshold over those who left, short abandons
//! (hung up before the threshold could be met) counting neither way.

use serde::Serialize;

use super::{Store, StoreError};

/// One queue since a point in time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueDay {
    /// Callers who left the queue (answered, abandoned, overflowed, timed out).
    pub left: i64,
    pub answered: i64,
    pub answered_within: i64,
    pub abandoned: i64,
    pub abandoned_within: i64,
    /// `None` without callers who count.
    pub service_level: Option<f64>,
}

impl Store {
    /// `queue`'s callers who left it since `from_ms`, with `threshold_ms` as the
    /// service-level target.
    pub async fn queue_day(
        &self,
        queue: &str,
        from_ms: i64,
        threshold_ms: i64,
    ) -> Result<QueueDay, StoreError> {
        let (left, answered, answered_within, abandoned, abandoned_within): (
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT COUNT(*),
                    COALESCE(SUM(reason = 'Answered'), 0),
                    COALESCE(SUM(reason = 'Answered' AND waited_ms <= ?), 0),
                    COALESCE(SUM(reason = 'Abandoned'), 0),
                    COALESCE(SUM(reason = 'Abandoned' AND waited_ms <= ?), 0)
             FROM queue_events WHERE kind = 'leave' AND queue = ? AND at_ms >= ?",
        )
        .bind(threshold_ms)
        .bind(threshold_ms)
        .bind(queue)
        .bind(from_ms)
        .fetch_one(&self.pool)
        .await?;
        let counted = left - abandoned_within;
        Ok(QueueDay {
            left,
            answered,
            answered_within,
            abandoned,
            abandoned_within,
            service_level: (counted > 0).then(|| answered_within as f64 / counted as f64),
        })
    }
}
