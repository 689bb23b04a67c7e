-- The public API: owners, callbacks and versions on jobs; API keys; idempotency keys;
-- webhook deliveries; full-text search over posts.
ALTER TABLE jobs
    ADD COLUMN owner        text,
    ADD COLUMN callback_url text,
    ADD COLUMN version      bigint NOT NULL DEFAULT 1;
CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, job_id DESC);
CREATE INDEX jobs_state_created ON jobs (state, created_at DESC);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,      -- sha256 of the key; the key itself is never stored
    key_hint    text NOT NULL,             -- prefix and last characters, to recognise it
    scopes      text[] NOT NULL,
    rate_per_s  double precision,          -- NULL: the gateway's default
    burst       integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE idempotency_keys (
    owner      text NOT NULL,
    key        text NOT NULL,
    body_hash  text NOT NULL,
    job_id     text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, key)
);

CREATE TABLE webhook_deliveries (
    delivery_id  text PRIMARY KEY,
    job_id       text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    url          text NOT NULL,
    payload      jsonb NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'pending',   -- pending, delivered, failed
    last_error   text,
    delivered_at timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';

CREATE TABLE secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);

ALTER TABLE posts ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', coalesce(event->>'title', '')), 'A')
    || setweight(to_tsvector('simple', coalesce(event->>'keywords', '')), 'A')
    || setweight(to_tsvector('simple', coalesce(event->>'meta_description', '')), 'B')
    || setweight(to_tsvector('simple', coalesce(event->>'markdown', '')), 'C')
) STORED;
CREATE INDEX posts_search ON posts USING gin (search);
CREATE INDEX posts_created ON posts (created_at DESC, post_id DESC);
CREATE INDEX posts_language ON posts (language, created_at DESC);
