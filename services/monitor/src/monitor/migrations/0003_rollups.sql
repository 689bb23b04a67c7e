-- Per-minute rollups: what /v1/summary and the alert read, so no query scans every job.
-- Jobs entering each state (failures by stage and code), by the minute they entered it.
CREATE TABLE state_minutes (
    minute timestamptz NOT NULL,
    state  text NOT NULL,
    stage  text NOT NULL DEFAULT '',
    code   text NOT NULL DEFAULT '',
    n      bigint NOT NULL,
    PRIMARY KEY (minute, state, stage, code)
);
-- Each job's first terminal state (its outcome), by minute.
CREATE TABLE outcome_minutes (
    minute  timestamptz NOT NULL,
    outcome text NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (minute, outcome)
);
-- Latency sketches: spans by the minute they ended, counted in log buckets with 1 % relative
-- error (bucket = ceil(ln(seconds) / ln(1.01 / 0.99)), seconds at least 1e-4).
CREATE TABLE span_minutes (
    minute timestamptz NOT NULL,
    span   text NOT NULL,
    bucket integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (minute, span, bucket)
);

-- What the job states recorded so far say, so the figures carry over.
INSERT INTO state_minutes (minute, state, stage, code, n)
SELECT date_trunc('minute', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', state,
       coalesce(stage, ''), coalesce(code, ''), count(*)
FROM job_states GROUP BY 1, 2, 3, 4;

INSERT INTO outcome_minutes (minute, outcome, n)
SELECT date_trunc('minute', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', state, count(*)
FROM (SELECT DISTINCT ON (job_id) job_id, state, at FROM job_states
      WHERE rank = 4 ORDER BY job_id, at, state) first_terminal
GROUP BY 1, 2;

INSERT INTO span_minutes (minute, span, bucket, n)
SELECT date_trunc('minute', e.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', d.span,
       ceil(ln(greatest(extract(epoch FROM e.at - s.at)::float8, 1e-4)) / ln(1.01 / 0.99))::int,
       count(*)
FROM (VALUES ('queue', 'queued', 'crawling'), ('crawl', 'crawling', 'translating'),
             ('translate', 'translating', 'generating'), ('generate', 'generating', 'completed'),
             ('end_to_end', 'queued', 'completed')) AS d(span, start_state, end_state)
JOIN job_states s ON s.state = d.start_state
JOIN job_states e ON e.job_id = s.job_id AND e.state = d.end_state
WHERE e.at >= s.at
GROUP BY 1, 2, 3;
