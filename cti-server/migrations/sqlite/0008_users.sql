-- Web users (the staff of the configuration: agents, supervisors, admins), their login
-- sessions, and the audit log of who did or read what.
CREATE TABLE users (
    name            TEXT PRIMARY KEY,   -- the agent's extension
    role            TEXT NOT NULL,      -- 'agent', 'supervisor', 'admin'
    password_hash   TEXT NOT NULL,      -- Argon2id PHC string
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_sha256    TEXT PRIMARY KEY,   -- SHA-256 of the bearer token (never the token)
    user_name       TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL,
    source          TEXT
);

CREATE INDEX sessions_user ON sessions (user_name);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    at_ms           BIGINT NOT NULL,
    actor           TEXT NOT NULL,      -- user name, or 'api-token'
    action          TEXT NOT NULL,      -- 'login', 'login_failed', 'recording.audio', ...
    target          TEXT,
    detail          TEXT,
    source          TEXT                -- the client's address
);

CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_actor ON audit_log (actor, at_ms);
