-- The monitor no longer keeps a row per event: job_states (one row per job and state) is
-- idempotent by itself, and the events counter dedupes redeliveries in the process.
DROP TABLE IF EXISTS seen_events;
