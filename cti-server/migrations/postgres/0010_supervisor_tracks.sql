-- PostgreSQL version of migrations/sqlite/0010_supervisor_tracks.sql (kept in step with it).
-- A supervisor's own track of a monitored call (what they said: a whisper is heard by the
-- agent only, so the call's recording does not have it): a recordings row of the monitored
-- call with the supervisor's call here.
ALTER TABLE recordings ADD COLUMN monitor_call_id BIGINT;
