-- PostgreSQL version of migrations/sqlite/0015_call_hold.sql (kept in step with it).
-- How long one party held the other during the call (re-INVITE hold, the console's Hold).
ALTER TABLE calls ADD COLUMN hold_ms BIGINT NOT NULL DEFAULT 0;
