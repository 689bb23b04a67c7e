-- A paid call is written BEFORE it is made (state 'open', usage estimated from the prompt) and
-- completed with the raw answer and its real usage the moment the answer arrives. A redelivered
-- job reuses a completed answer; an intent a killed process left open may have been billed, so
-- it counts in the job's usage as an unconfirmed call. Failed calls (no answer) count nothing.
ALTER TABLE llm_calls ADD COLUMN attempt integer NOT NULL DEFAULT 0;
ALTER TABLE llm_calls ADD COLUMN state text NOT NULL DEFAULT 'done'
    CHECK (state IN ('open', 'done', 'failed'));
ALTER TABLE llm_calls ADD COLUMN prompt_hash text NOT NULL DEFAULT '';
ALTER TABLE llm_calls ADD COLUMN raw text;
ALTER TABLE llm_calls ADD COLUMN error text;
ALTER TABLE llm_calls ADD COLUMN completed_at timestamptz;
ALTER TABLE llm_calls ALTER COLUMN response DROP NOT NULL;
ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_pkey;
ALTER TABLE llm_calls ADD PRIMARY KEY (job_id, purpose, attempt);
