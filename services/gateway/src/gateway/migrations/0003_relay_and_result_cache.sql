-- When the relay publishes a job's submitted event again if the job is still queued by then
-- (the index holds only queued jobs, so leaving `queued` takes a job out of it with no
-- extra write), and the result cache: each job's normalized request, and the job a
-- cached job copied its post from.
ALTER TABLE jobs
    ADD COLUMN publish_due timestamptz,
    ADD COLUMN request_key text,
    ADD COLUMN cached_from text;
CREATE INDEX jobs_publish_due ON jobs (publish_due)
    WHERE publish_due IS NOT NULL AND state = 'queued';
CREATE INDEX jobs_result_cache ON jobs (request_key, updated_at DESC)
    WHERE state = 'completed' AND cached_from IS NULL;
