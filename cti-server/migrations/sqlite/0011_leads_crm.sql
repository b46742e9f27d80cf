-- The lead database proper: contact data, source, status, follow-up dates, custom fields, and
-- a timeline of everything that happened to a lead.
ALTER TABLE leads ADD COLUMN email TEXT;
ALTER TABLE leads ADD COLUMN source TEXT;            -- hq, web, inbound_call, showroom, event, ...
ALTER TABLE leads ADD COLUMN status TEXT NOT NULL DEFAULT 'new';
ALTER TABLE leads ADD COLUMN product TEXT;           -- product of interest
ALTER TABLE leads ADD COLUMN custom TEXT;            -- JSON object: fields admins define
ALTER TABLE leads ADD COLUMN next_follow_up_ms BIGINT;
ALTER TABLE leads ADD COLUMN first_contact_due_ms BIGINT;  -- the 24-hour rule's deadline
ALTER TABLE leads ADD COLUMN first_contact_at_ms BIGINT;
ALTER TABLE leads ADD COLUMN updated_at_ms BIGINT;

CREATE INDEX leads_owner_follow_up ON leads (owner_agent, next_follow_up_ms);

CREATE TABLE lead_events (
    id          INTEGER PRIMARY KEY,
    lead_id     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,       -- created, contact, grade, status, owner, follow_up, note, ...
    detail      TEXT                 -- JSON
);

CREATE INDEX lead_events_lead ON lead_events (lead_id, at_ms);
