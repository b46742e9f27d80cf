-- Call recordings: one stereo WAV per call (customer left, our side right), indexed when
-- the recording closes. Times are wall-clock milliseconds since the Unix epoch.
CREATE TABLE recordings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         BIGINT NOT NULL,
    path            TEXT NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    duration_ms     BIGINT NOT NULL,
    bytes           BIGINT,             -- NULL: the file could not be read when indexed
    sha256          TEXT,
    overrun_ms      BIGINT NOT NULL     -- audio the disk did not take in time (silence)
);

CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_started_at ON recordings (started_at_ms);
