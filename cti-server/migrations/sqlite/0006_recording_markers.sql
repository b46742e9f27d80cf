-- Pause and resume markers of a recording (the agent paused it while the customer read out a
-- card number): JSON [{"at_ms": offset in the file, "paused": true|false}, ...].
ALTER TABLE recordings ADD COLUMN markers TEXT;
