-- Pages by normalised URL (compressed HTML and text), and one crawl result per job.
CREATE TABLE pages (
    url          text PRIMARY KEY,
    final_url    text NOT NULL,
    content_hash text NOT NULL,
    title        text NOT NULL,
    language     text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    html_z       bytea NOT NULL,
    text_z       bytea NOT NULL,
    etag         text,
    last_modified text,
    fetched_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE crawls (
    job_id     text PRIMARY KEY,
    url        text NOT NULL,
    event      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crawls_url ON crawls (url);
