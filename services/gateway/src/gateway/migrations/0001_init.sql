-- The gateway's read model: jobs with their state history, and finished posts.
CREATE TABLE jobs (
    job_id     text PRIMARY KEY,
    spec       jsonb NOT NULL,
    state      text NOT NULL,
    progress   jsonb,
    error      jsonb,
    trace_id   text,
    post_id    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_created ON jobs (created_at DESC);

CREATE TABLE job_history (
    event_id text PRIMARY KEY,
    job_id   text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    state    text NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX job_history_job ON job_history (job_id, at);

CREATE TABLE posts (
    post_id    text PRIMARY KEY,
    job_id     text NOT NULL UNIQUE,
    title      text NOT NULL,
    language   text NOT NULL,
    event      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
