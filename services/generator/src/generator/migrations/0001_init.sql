-- Posts (one per job) and every LLM call with its token usage and cost.
CREATE TABLE posts (
    post_id    text PRIMARY KEY,
    job_id     text NOT NULL UNIQUE,
    writer     text NOT NULL,
    seo_score  integer NOT NULL,
    event      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE llm_calls (
    job_id            text NOT NULL,
    purpose           text NOT NULL,
    cache_key         text NOT NULL,
    model             text NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    cost_usd          numeric(14, 8) NOT NULL,
    response          jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, purpose)
);
