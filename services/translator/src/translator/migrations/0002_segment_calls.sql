-- Every segment a job paid the LLM for, so a redelivered job reuses it (and its cost) even
-- when the cache has lost it: nothing is billed twice.
CREATE TABLE segment_calls (
    job_id            text NOT NULL,
    segment_key       text NOT NULL,
    model             text NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    cost_usd          numeric(14, 8) NOT NULL,
    batched           boolean NOT NULL DEFAULT false,
    translation       text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, segment_key)
);
