-- PostgreSQL version of migrations/sqlite/0002_calls.sql (kept in step with it).
-- Call records (CDR) and their legs, written by the store writer when a call ends.
-- Times are wall-clock milliseconds since the Unix epoch.

CREATE TABLE calls (
    id              BIGINT PRIMARY KEY,
    sip_call_id     TEXT NOT NULL,
    direction       TEXT NOT NULL,          -- 'inbound' | 'outbound'
    from_uri        TEXT NOT NULL,
    to_uri          TEXT NOT NULL,
    dialed          TEXT NOT NULL,
    agent           TEXT,
    offered_at_ms   BIGINT NOT NULL,
    ringing_at_ms   BIGINT,
    answered_at_ms  BIGINT,
    ended_at_ms     BIGINT,
    end_cause       TEXT,
    ended_by        TEXT                    -- 'caller' | 'agent' | NULL (the server)
);

CREATE INDEX calls_offered_at ON calls (offered_at_ms);
CREATE INDEX calls_agent_offered_at ON calls (agent, offered_at_ms);

CREATE TABLE call_legs (
    call_id         BIGINT NOT NULL REFERENCES calls (id),
    side            TEXT NOT NULL,          -- 'caller' | 'agent'
    codec           TEXT,
    packets_sent    BIGINT NOT NULL,
    packets_received BIGINT NOT NULL,
    packets_lost    BIGINT NOT NULL,
    jitter_ms       DOUBLE PRECISION NOT NULL,
    remote_loss_fraction DOUBLE PRECISION,
    round_trip_ms   DOUBLE PRECISION,
    PRIMARY KEY (call_id, side)
);
