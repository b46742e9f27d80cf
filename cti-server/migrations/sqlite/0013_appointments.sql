-- Showroom visits booked from calls, and their handover: at the visit the customer is
-- introduced to a direct-sales person (the receiver), who takes the lead on; a no-show
-- returns the lead to its agent's follow-ups.
CREATE TABLE appointments (
    id             INTEGER PRIMARY KEY,
    lead_id        BIGINT NOT NULL,
    at_ms          BIGINT NOT NULL,        -- when the customer is expected
    place          TEXT,
    note           TEXT,
    booked_by      TEXT NOT NULL,
    booked_at_ms   BIGINT NOT NULL,
    call_id        BIGINT,                 -- the call it was booked on
    state          TEXT NOT NULL DEFAULT 'booked',  -- booked, shown, no_show, cancelled
    receiver       TEXT,                   -- the direct-sales person who signed the handover
    outcome_by     TEXT,
    outcome_at_ms  BIGINT
);

CREATE INDEX appointments_at ON appointments (at_ms);
CREATE INDEX appointments_lead ON appointments (lead_id);
