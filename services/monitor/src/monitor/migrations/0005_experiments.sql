-- Experiments as the gateway announces them (seo.experiment.changed), and each experiment
-- job's figures, folded from its events: the guardrails and ramp steps are evaluated on these.
CREATE TABLE experiments (
    experiment_id text PRIMARY KEY,
    version       integer NOT NULL,
    status        text NOT NULL,
    definition    jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE experiment_jobs (
    experiment_id text NOT NULL,
    job_id        text NOT NULL,
    variant       text NOT NULL,
    submitted_at  timestamptz,
    crawled_at    timestamptz,
    translated_at timestamptz,
    finished_at   timestamptz,
    outcome       text,               -- completed, failed, cancelled; NULL while running
    failure_code  text,
    score         real,
    tokens        integer,
    cost_usd      double precision,
    revised       boolean,
    PRIMARY KEY (experiment_id, job_id)
);
CREATE INDEX experiment_jobs_job ON experiment_jobs (job_id);
CREATE INDEX experiment_jobs_finished ON experiment_jobs (experiment_id, finished_at)
    WHERE outcome IS NOT NULL;
