-- One translation result per job (document level); segments live in the cache.
CREATE TABLE translations (
    job_id          text PRIMARY KEY,
    content_hash    text NOT NULL,
    source_language text,
    target_language text NOT NULL,
    translated      boolean NOT NULL,
    event           jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX translations_content ON translations (content_hash, target_language);
