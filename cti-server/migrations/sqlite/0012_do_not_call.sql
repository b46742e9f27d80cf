-- The do-not-call list: numbers (E.164) no agent may call, whoever's lead they are on.
CREATE TABLE dnc_numbers (
    number       TEXT PRIMARY KEY,
    reason       TEXT,
    added_by     TEXT NOT NULL,
    added_at_ms  BIGINT NOT NULL
);
