-- depends: 000003_create_rule_outbox
-- Data plane (aggregator, sender): one row per (client, alert); the unique constraint is
-- the platform's dedupe boundary. No foreign key to clients: the data plane stands alone.
CREATE TABLE notifications (
    notification_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id            uuid NOT NULL,
    alert_id             text NOT NULL,
    rule_ids             uuid[] NOT NULL,
    emails               text[] NOT NULL,
    alert                bytea NOT NULL,                   -- a serialized alerting.v1.Alert
    status               text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT')),
    trace_context        text NOT NULL DEFAULT '',         -- W3C traceparent of the alert's trace
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    published_at         timestamptz,                      -- last time notifications.ready carried it
    sent_at              timestamptz,
    CONSTRAINT notifications_client_alert_key UNIQUE (client_id, alert_id)
);
-- The aggregator's sweeper republishes rows left PENDING.
CREATE INDEX notifications_pending_idx ON notifications (published_at) WHERE status = 'PENDING';
