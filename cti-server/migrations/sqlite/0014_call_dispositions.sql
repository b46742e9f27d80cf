-- The result code an agent recorded for a call in wrap-up (one per call).
CREATE TABLE call_dispositions (
    call_id    BIGINT PRIMARY KEY,
    agent      TEXT NOT NULL,
    code       TEXT NOT NULL,
    queue      TEXT,
    lead_id    BIGINT,
    note       TEXT,
    at_ms      BIGINT NOT NULL
);

CREATE INDEX call_dispositions_at ON call_dispositions (at_ms);
