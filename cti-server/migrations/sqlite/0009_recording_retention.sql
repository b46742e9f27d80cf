-- Retention and legal hold: a recording past its retention is deleted (file gone, row kept
-- with the time it went) unless a legal hold keeps it.
ALTER TABLE recordings ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN hold_reason TEXT;
ALTER TABLE recordings ADD COLUMN deleted_at_ms BIGINT;
