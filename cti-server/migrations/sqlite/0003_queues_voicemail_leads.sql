-- Hosted calls (IVR, queues, voicemail), queue events for the reports, voicemails, and the
-- first cut of the lead store (the IVR looks callers up in it).
-- Times are wall-clock milliseconds since the Unix epoch.

ALTER TABLE calls ADD COLUMN connected_at_ms BIGINT;     -- an agent answered a hosted call
ALTER TABLE calls ADD COLUMN services TEXT;              -- e.g. 'flow:main queue:sales'

-- Every queue and agent event, as the ACD emitted it: service level, average speed of answer
-- and abandon rate per queue and interval are computed from these rows.
CREATE TABLE queue_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms           BIGINT NOT NULL,
    queue           TEXT,
    call_id         BIGINT,
    agent           TEXT,
    kind            TEXT NOT NULL,      -- enter, offer, ringing, ring_no_answer, offer_failed,
                                        -- offer_cancelled, answer, abandon, refused, overflow,
                                        -- leave, call_ended, agent_state
    reason          TEXT,               -- leave/overflow reason, failure, agent state
    waited_ms       BIGINT,             -- answer/abandon/leave: time in the queue
    detail          TEXT                -- anything else (overflow target, break reason)
);

CREATE INDEX queue_events_queue_at ON queue_events (queue, at_ms);
CREATE INDEX queue_events_agent_at ON queue_events (agent, at_ms);

CREATE TABLE voicemails (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         BIGINT NOT NULL,
    mailbox         TEXT NOT NULL,
    caller          TEXT NOT NULL,
    lead_id         BIGINT,
    path            TEXT NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    duration_ms     BIGINT NOT NULL,
    heard_at_ms     BIGINT,
    heard_by        TEXT
);

CREATE INDEX voicemails_mailbox ON voicemails (mailbox, started_at_ms);

CREATE TABLE leads (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    company         TEXT,
    grade           TEXT,               -- H, A, B, C (DOMAIN.md)
    owner_agent     TEXT,
    customer_no     TEXT UNIQUE,
    created_at_ms   BIGINT NOT NULL
);

-- Phones of a lead, normalised to digits (a leading + kept) so a caller's number matches
-- however the carrier formats it.
CREATE TABLE lead_phones (
    lead_id         BIGINT NOT NULL REFERENCES leads (id),
    phone           TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'primary',   -- primary | alternate
    PRIMARY KEY (lead_id, phone)
);

CREATE INDEX lead_phones_phone ON lead_phones (phone);
