-- Submits whose event the stream has not confirmed yet (the relay republishes them once
-- publish_due passes), and the result cache: each job's normalized request, and the job a
-- cached job copied its post from.
ALTER TABLE jobs
    ADD COLUMN publish_due timestamptz,
    ADD COLUMN request_key text,
    ADD COLUMN cached_from text;
CREATE INDEX jobs_publish_due ON jobs (publish_due) WHERE publish_due IS NOT NULL;
CREATE INDEX jobs_result_cache ON jobs (request_key, updated_at DESC)
    WHERE state = 'completed' AND cached_from IS NULL;
