-- Audit log of live supervision: who monitored whom, in which modes and when.
CREATE TABLE monitor_sessions (
    id              INTEGER PRIMARY KEY,
    call_id         BIGINT NOT NULL,   -- the supervisor's call
    monitored_call_id BIGINT NOT NULL, -- the agent's call
    supervisor      TEXT NOT NULL,
    agent           TEXT NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT NOT NULL,
    modes           TEXT NOT NULL,     -- JSON [{"at_ms": wall-clock ms, "mode": "listen"|"whisper"|"barge"}, ...]
    connected       INTEGER NOT NULL,  -- 1 when the agent's call took the supervisor in
    outcome         TEXT NOT NULL
);

CREATE INDEX monitor_sessions_started ON monitor_sessions (started_at_ms);
CREATE INDEX monitor_sessions_agent ON monitor_sessions (agent, started_at_ms);
