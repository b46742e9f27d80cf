-- Hot-lead reports (the software vendor's flow): the telemarketer reports a lead that meets
-- all five criteria; a sales manager accepts or rejects it by `review_by_ms` (a number of
-- working days), silence until then counting as accepted; a rejection gives a reason and
-- returns the lead to its telemarketer's work list.
CREATE TABLE hot_leads (
    id              INTEGER PRIMARY KEY,
    lead_id         BIGINT NOT NULL,
    reported_by     TEXT NOT NULL,
    reported_at_ms  BIGINT NOT NULL,
    criteria        TEXT NOT NULL,          -- JSON: what the customer said for each criterion
    note            TEXT,
    call_id         BIGINT,                 -- the call it was reported from
    review_by_ms    BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending, accepted, rejected
    decided_by      TEXT,                   -- NULL on an accepted report: accepted by silence
    decided_at_ms   BIGINT,
    reason          TEXT                    -- why it was rejected
);

CREATE INDEX hot_leads_state ON hot_leads (state, review_by_ms);
CREATE INDEX hot_leads_reported ON hot_leads (reported_at_ms);
CREATE INDEX hot_leads_lead ON hot_leads (lead_id);
