-- Experiments: each one's definition and state (status, shares, ramp step) as one document,
-- with a version that grows with every change. A job's variants are recorded in its spec
-- (spec->'experiments', assigned once at submit and carried in its events); the index finds
-- an experiment's jobs for its report.
CREATE TABLE experiments (
    experiment_id text PRIMARY KEY,
    status        text NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    definition    jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiments_active ON experiments (created_at) WHERE status IN ('running', 'promoted');
CREATE INDEX jobs_experiments ON jobs USING gin ((spec->'experiments') jsonb_path_ops);
