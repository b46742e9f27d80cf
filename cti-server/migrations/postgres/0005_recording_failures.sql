-- PostgreSQL version of migrations/sqlite/0005_recording_failures.sql (kept in step with it).
-- A recording the disk stopped (full, gone) keeps its row: what it holds and why it ends
-- early, so the gap in the call's recording is on record.
ALTER TABLE recordings ADD COLUMN written_ms BIGINT;   -- audio in the file (NULL: all of it)
ALTER TABLE recordings ADD COLUMN error TEXT;          -- why it stopped early (NULL: it did not)
