-- Event ids already observed, so a redelivered event is counted once.
-- Rows older than the stream's max age are pruned: such events can no longer be redelivered.
CREATE TABLE seen_events (
    event_id text PRIMARY KEY,
    type     text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX seen_events_seen_at ON seen_events (seen_at);

-- When each job entered each state (the event's occurred_at). rank orders the states:
-- queued 0, crawling 1, translating 2, generating 3, and 4 for every terminal state.
CREATE TABLE job_states (
    job_id      text NOT NULL,
    state       text NOT NULL,
    rank        smallint NOT NULL,
    at          timestamptz NOT NULL,
    stage       text,
    code        text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, state)
);
CREATE INDEX job_states_state_at ON job_states (state, at);
CREATE INDEX job_states_terminal_at ON job_states (at) WHERE rank = 4;

-- Alert history; at most one open (unresolved) row per alert, across replicas.
CREATE TABLE alerts (
    id          bigserial PRIMARY KEY,
    alert       text NOT NULL,
    severity    text NOT NULL,
    summary     text NOT NULL,
    value       double precision,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (alert) WHERE resolved_at IS NULL;
