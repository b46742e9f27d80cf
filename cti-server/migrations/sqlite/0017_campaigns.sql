-- Outbound campaigns: a list of leads worked by a skill group's agents with a script, in
-- calling windows, retrying failed calls; preview or progressive dialing.
CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    script          TEXT NOT NULL DEFAULT '',
    mode            TEXT NOT NULL,          -- preview, progressive
    skill           TEXT NOT NULL,          -- the skill group whose agents work it
    retries         INTEGER NOT NULL,       -- how often a failed call is tried again
    retry_after_s   INTEGER NOT NULL,       -- how long after
    calling_hours   TEXT,                   -- JSON periods; NULL: the [dialing] hours
    ends_at_ms      BIGINT,                 -- the deadline: no calls after it
    state           TEXT NOT NULL DEFAULT 'paused',  -- running, paused, finished
    created_by      TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);

CREATE TABLE campaign_leads (
    campaign_id      BIGINT NOT NULL,
    lead_id          BIGINT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'waiting',  -- waiting, offered, calling, reached,
                                                       -- exhausted, excluded
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_at_ms       BIGINT NOT NULL,        -- due from
    agent            TEXT,                   -- who worked it last
    offered_until_ms BIGINT,
    call_id          BIGINT,                 -- the last attempt's call
    last_outcome     TEXT,                   -- connected, busy, no_answer, ..., do_not_call
    updated_at_ms    BIGINT,
    PRIMARY KEY (campaign_id, lead_id)
);

CREATE INDEX campaign_leads_due ON campaign_leads (campaign_id, state, next_at_ms);
CREATE INDEX campaign_leads_agent ON campaign_leads (agent, state);
