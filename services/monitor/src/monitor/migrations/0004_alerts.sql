-- LLM cost for the live page and the llm_cost_over_budget alert: per minute, and which parts
-- of each job's cost are counted already (a job's translation cost arrives with
-- seo.text.translated, its whole cost with seo.post.generated), so each dollar counts once.
CREATE TABLE cost_minutes (
    minute   timestamptz PRIMARY KEY,
    cost_usd double precision NOT NULL,
    tokens   bigint NOT NULL
);
CREATE TABLE job_costs (
    job_id   text NOT NULL,
    part     text NOT NULL,          -- 'translate' or 'job'
    cost_usd double precision NOT NULL,
    tokens   bigint NOT NULL,
    at       timestamptz NOT NULL,
    PRIMARY KEY (job_id, part)
);
CREATE INDEX job_costs_at ON job_costs (at);
