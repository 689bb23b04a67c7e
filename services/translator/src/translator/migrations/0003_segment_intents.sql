-- A segment call is written BEFORE it is made (state 'open', usage estimated from the prompt)
-- and completed with the translation and its real usage the moment the answer arrives. A
-- redelivered job reuses completed segments; an intent a killed process left open may have
-- been billed, so it counts in the job's usage as an unconfirmed call. Failed calls count nothing.
ALTER TABLE segment_calls ADD COLUMN attempt integer NOT NULL DEFAULT 0;
ALTER TABLE segment_calls ADD COLUMN state text NOT NULL DEFAULT 'done'
    CHECK (state IN ('open', 'done', 'failed'));
ALTER TABLE segment_calls ADD COLUMN prompt_hash text NOT NULL DEFAULT '';
ALTER TABLE segment_calls ADD COLUMN error text;
ALTER TABLE segment_calls ADD COLUMN completed_at timestamptz;
ALTER TABLE segment_calls ALTER COLUMN translation DROP NOT NULL;
ALTER TABLE segment_calls DROP CONSTRAINT segment_calls_pkey;
ALTER TABLE segment_calls ADD PRIMARY KEY (job_id, segment_key, attempt);
