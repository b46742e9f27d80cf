//! Recording retention: recordings older than their queue's `retention_days` (else
//! `recording.retention_days`) are deleted by a sweep every `recording.retention_sweep_s`,
//! unless a legal hold keeps them. The index row stays, marked deleted, and the deletion is
//! in the audit log: what existed and when it went remains on record.

use std::collections::HashMap;
use std::time::Duration;

/// How long recordings are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPolicy {
    /// For calls that went through no queue with its own (`None`: kept for ever).
    pub default: Option<Duration>,
    /// Per queue name.
    pub queues: HashMap<String, Duration>,
}

impl RetentionPolicy {
    /// The retention of a call that went through `services` (space-separated, in order, as
    /// the call record keeps them): the last queue's own, else the default.
    pub fn for_services(&self, services: Option<&str>) -> Option<Duration> {
        services
            .unwrap_or_default()
            .split_whitespace()
            .rev()
            .filter_map(|s| s.strip_prefix("queue:"))
            .find_map(|q| self.queues.get(q).copied())
            .or(self.default)
    }

    /// True when nothing is ever deleted.
    pub fn keeps_all(&self) -> bool {
        self.default.is_none() && self.queues.is_empty()
    }

    /// Is a recording that started at `started_ms` past its retention at `now_ms`?
    pub fn expired(&self, services: Option<&str>, started_ms: i64, now_ms: i64) -> bool {
        self.for_services(services)
            .is_some_and(|keep| now_ms.saturating_sub(started_ms) > keep.as_millis() as i64)
    }
}

/// Days (fractions allowed) as a duration; `None` for no limit (0 or unset).
pub fn days(d: Option<f64>) -> Option<Duration> {
    d.filter(|d| *d > 0.0)
        .map(|d| Duration::from_secs_f64(d * 86_400.0))
}

/// One sweep: deletes the files of expired recordings not on hold, marks their rows, and
/// writes each deletion to the audit log. Returns how many went.
pub async fn sweep(store: &crate::store::Store, policy: &RetentionPolicy) -> usize {
    if policy.keeps_all() {
        return 0;
    }
    let now = crate::store::now_ms();
    let candidates = match store.retention_candidates().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "retention sweep: cannot read the index");
            return 0;
        }
    };
    let mut deleted = 0;
    for c in candidates
        .into_iter()
        .filter(|c| policy.expired(c.services.as_deref(), c.started_at_ms, now))
    {
        // Marked first, so a legal hold placed meanwhile wins; the mark is taken back if the
        // file will not go.
        match store.mark_recording_deleted(c.id, now).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(id = c.id, error = %e, "retention: recording not marked");
                continue;
            }
        }
        match tokio::fs::remove_file(&c.path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // Kept, and tried again at the next sweep.
                tracing::warn!(path = %c.path, error = %e, "retention: recording not deleted");
                if let Err(e) = store.unmark_recording_deleted(c.id).await {
                    tracing::error!(id = c.id, error = %e, "retention: mark not taken back");
                }
                continue;
            }
        }
        let detail = format!("{} (call {})", c.path, c.call_id);
        if let Err(e) = store
            .audit(
                "retention",
                "recording.deleted",
                Some(&c.id.to_string()),
                Some(&detail),
                None,
            )
            .await
        {
            tracing::error!(id = c.id, error = %e, "retention: deletion not in the audit log");
        }
        tracing::info!(id = c.id, path = %c.path, "recording deleted after its retention");
        deleted += 1;
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_queue_with_its_own_retention_decides_else_the_default() {
        let policy = RetentionPolicy {
            default: days(Some(90.0)),
            queues: [("sales".to_string(), Duration::from_secs(86_400 * 30))].into(),
        };
        let day = 86_400_000;
        assert_eq!(
            policy.for_services(Some("flow:main queue:sales")),
            Some(Duration::from_secs(86_400 * 30))
        );
        assert_eq!(
            policy.for_services(Some("queue:sales queue:service")),
            Some(Duration::from_secs(86_400 * 30)),
            "service has none of its own: sales, where the call was, still counts"
        );
        assert_eq!(policy.for_services(None), days(Some(90.0)));
        assert!(policy.expired(Some("queue:sales"), 0, 31 * day));
        assert!(!policy.expired(Some("queue:sales"), 0, 29 * day));
        assert!(!policy.expired(None, 0, 89 * day));
        assert!(policy.expired(None, 0, 91 * day));
        let keep = RetentionPolicy::default();
        assert!(keep.keeps_all());
        assert!(!keep.expired(None, 0, i64::MAX));
        assert_eq!(days(Some(0.0)), None);
        assert_eq!(days(None), None);
    }
}
