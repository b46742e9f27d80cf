//! Queue and agent figures from the stored queue events and call records: the floor's
//! "today" columns and the skill-group and agent-workload reports. The queue rule is the
//! same as [`crate::acd::stats::queue_stats`]: a caller counts when they leave the queue; the
//! service level is answered within the threshold over those who left, short abandons (hung
//! up before the threshold could be met) counting neither way.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Store, StoreError};

/// One queue over an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueFigures {
    /// Callers who entered the queue.
    pub entered: i64,
    /// Callers who left the queue (answered, abandoned, overflowed, timed out).
    pub left: i64,
    pub answered: i64,
    pub answered_within: i64,
    pub abandoned: i64,
    pub abandoned_within: i64,
    /// Left for their overflow target (or timed out).
    pub overflowed: i64,
    /// `None` without callers who count.
    pub service_level: Option<f64>,
    /// Average speed of answer: the answered callers' mean wait, ms.
    pub average_answer_ms: Option<f64>,
    /// Longest wait of a caller who left, ms.
    pub longest_wait_ms: Option<i64>,
}

/// One agent over an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentFigures {
    /// Queue calls answered.
    pub answered: i64,
    /// Queue calls offered that rang out unanswered.
    pub ring_no_answer: i64,
    /// Calls put straight through to the agent (not by a queue) and answered.
    pub direct_in: i64,
    /// Calls the agent placed out through the trunk.
    pub calls_out: i64,
    /// Talk time of queue calls, ms.
    pub talk_ms: i64,
    /// Time the agent's calls (taken or placed) spent on hold, ms.
    pub hold_ms: i64,
    /// Time in each ACD state (`available`, `on_call`, `wrap_up`, `break`, `ringing`), ms;
    /// logged out is not counted.
    pub state_ms: BTreeMap<String, i64>,
}

impl Store {
    /// `queue`'s figures for callers who left it in `[from_ms, to_ms)`, with `threshold_ms`
    /// as the service-level target.
    pub async fn queue_figures(
        &self,
        queue: &str,
        from_ms: i64,
        to_ms: i64,
        threshold_ms: i64,
    ) -> Result<QueueFigures, StoreError> {
        type Row = (i64, i64, i64, i64, i64, Option<f64>, Option<i64>, i64);
        let (left, answered, answered_within, abandoned, abandoned_within, asa, longest, entered): Row =
            sqlx::query_as(
                "SELECT COUNT(CASE WHEN kind = 'leave' THEN 1 END),
                        COUNT(CASE WHEN kind = 'leave' AND reason = 'Answered' THEN 1 END),
                        COUNT(CASE WHEN kind = 'leave' AND reason = 'Answered' AND waited_ms <= $1 THEN 1 END),
                        COUNT(CASE WHEN kind = 'leave' AND reason = 'Abandoned' THEN 1 END),
                        COUNT(CASE WHEN kind = 'leave' AND reason = 'Abandoned' AND waited_ms <= $2 THEN 1 END),
                        CAST(AVG(CASE WHEN kind = 'leave' AND reason = 'Answered' THEN waited_ms END)
                          AS DOUBLE PRECISION),
                        MAX(CASE WHEN kind = 'leave' THEN waited_ms END),
                        COUNT(CASE WHEN kind = 'enter' THEN 1 END)
                 FROM queue_events WHERE queue = $3 AND at_ms >= $4 AND at_ms < $5",
            )
            .bind(threshold_ms)
            .bind(threshold_ms)
            .bind(queue)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_one(&self.pool)
            .await?;
        let counted = left - abandoned_within;
        Ok(QueueFigures {
            entered,
            left,
            answered,
            answered_within,
            abandoned,
            abandoned_within,
            overflowed: left - answered - abandoned,
            service_level: (counted > 0).then(|| answered_within as f64 / counted as f64),
            average_answer_ms: asa,
            longest_wait_ms: longest,
        })
    }

    /// `agent`'s workload in `[from_ms, to_ms)`; state time up to `now_ms` at most.
    pub async fn agent_figures(
        &self,
        agent: &str,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
    ) -> Result<AgentFigures, StoreError> {
        let (answered, ring_no_answer, talk_ms): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(CASE WHEN kind = 'answer' THEN 1 END),
                    COUNT(CASE WHEN kind = 'ring_no_answer' THEN 1 END),
                    CAST(COALESCE(SUM(CASE WHEN kind = 'call_ended' THEN waited_ms END), 0) AS BIGINT)
             FROM queue_events WHERE agent = $1 AND at_ms >= $2 AND at_ms < $3",
        )
        .bind(agent)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        // Hold: the calls the agent took (their `agent`) and placed (outbound, from them).
        let (hold_taken,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(hold_ms), 0) AS BIGINT) FROM calls
             WHERE agent = $1 AND offered_at_ms >= $2 AND offered_at_ms < $3",
        )
        .bind(agent)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        // Direct calls: put through to the agent without a queue (the call's services name
        // no queue), answered.
        let (direct_in,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM calls
             WHERE agent = $1 AND offered_at_ms >= $2 AND offered_at_ms < $3
               AND COALESCE(answered_at_ms, connected_at_ms) IS NOT NULL
               AND COALESCE(services, '') NOT LIKE '%queue:%'",
        )
        .bind(agent)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?;
        // Calls out: the trunk calls whose caller is the agent's phone.
        let out: Vec<(String, i64)> = sqlx::query_as(
            "SELECT from_uri, hold_ms FROM calls
             WHERE direction = 'outbound' AND offered_at_ms >= $1 AND offered_at_ms < $2",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let theirs = out.iter().filter(|(u, _)| uri_user(u) == Some(agent));
        let calls_out = theirs.clone().count() as i64;
        let hold_placed: i64 = theirs.map(|(_, h)| h).sum();
        // Time in state: each agent_state event starts a state that lasts until the next;
        // the one in force at `from` counts from `from`.
        let changes: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT at_ms, reason FROM queue_events
             WHERE agent = $1 AND kind = 'agent_state' AND at_ms < $2
             ORDER BY at_ms, id",
        )
        .bind(agent)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let end = to_ms.min(now_ms);
        let mut state_ms = BTreeMap::new();
        for (i, (at, state)) in changes.iter().enumerate() {
            let until = changes.get(i + 1).map_or(end, |n| n.0).min(end);
            let start = (*at).max(from_ms);
            let Some(name) = state.as_deref().and_then(state_name) else {
                continue;
            };
            if until > start {
                *state_ms.entry(name.to_string()).or_insert(0) += until - start;
            }
        }
        Ok(AgentFigures {
            answered,
            ring_no_answer,
            direct_in,
            calls_out,
            talk_ms,
            hold_ms: hold_taken + hold_placed,
            state_ms,
        })
    }
}

/// The state's report name from the stored `AgentState` (its Debug form); logged out is
/// not working time.
fn state_name(stored: &str) -> Option<&'static str> {
    Some(match stored.split([' ', '{']).next()? {
        "Available" => "available",
        "OnCall" => "on_call",
        "WrapUp" => "wrap_up",
        "Break" => "break",
        "Ringing" => "ringing",
        _ => return None,
    })
}

/// The user part of a SIP URI as stored (`"Name" <sip:1001@host>;tag=..` or `sip:1001@host`).
pub(super) fn uri_user(uri: &str) -> Option<&str> {
    let start = uri.find("sip:")? + 4;
    let rest = &uri[start..];
    let end = rest.find(['@', '>', ';'])?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_states_and_uris_read_back() {
        assert_eq!(state_name("Available"), Some("available"));
        assert_eq!(state_name("Break { reason: \"lunch\" }"), Some("break"));
        assert_eq!(state_name("WrapUp"), Some("wrap_up"));
        assert_eq!(state_name("LoggedOut"), None);
        assert_eq!(
            uri_user("\"Alice\" <sip:1001@10.0.0.1>;tag=x"),
            Some("1001")
        );
        assert_eq!(uri_user("sip:+4930123@carrier"), Some("+4930123"));
        assert_eq!(uri_user("tel:123"), None);
    }
}
