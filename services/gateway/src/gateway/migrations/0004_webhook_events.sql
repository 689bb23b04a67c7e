-- Webhook event selection: the events a job's callback gets (NULL: completed, failed and
-- cancelled, as before), and coalesced progress deliveries, which a newer delivery of the same
-- job replaces or drops until their first attempt.
ALTER TABLE jobs ADD COLUMN callback_events text[];
ALTER TABLE webhook_deliveries ADD COLUMN replaceable boolean NOT NULL DEFAULT false;
CREATE INDEX webhook_deliveries_replaceable ON webhook_deliveries (job_id)
    WHERE replaceable AND state = 'pending';
