-- Foundation schema: agents known to the server and the history of their SIP reachability.
-- Portable SQL (SQLite and PostgreSQL): no AUTOINCREMENT, no SQLite-only types.

CREATE TABLE agents (
    extension   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    static_contact TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE registration_events (
    id          INTEGER PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    extension   TEXT NOT NULL,
    contact     TEXT NOT NULL,
    event       TEXT NOT NULL,      -- 'registered', 'unregistered', 'expired'
    transport   TEXT,
    source      TEXT
);

CREATE INDEX registration_events_extension_at ON registration_events (extension, at_ms);
