-- depends: 000007_notification_failures
-- Per-notification delivery: a notification is claimed under a lease (never a row lock held
-- across SMTP), attempted on its own, retried with backoff, and each recipient's outcome is
-- kept, so that one undeliverable notification or one refusing recipient holds back no other.
ALTER TABLE notifications
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN lease_until     timestamptz,   -- a sender is attempting it until then
    ADD COLUMN leased_by       text,          -- which sender (its instance id)
    ADD COLUMN last_error      text,          -- why the last attempt did not finish it
    ADD COLUMN retried_at      timestamptz;   -- an operator retried it: its maximum age counts from then
-- The sender's retry scheduler: PENDING rows whose next attempt is due.
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'PENDING';
-- Operators list notifications by tenant and status.
CREATE INDEX notifications_client_status_idx ON notifications (client_id, status, created_at);

-- The outcome of each recipient an attempt addressed: SENT and FAILED are final, DEFERRED
-- (a temporary refusal) is tried again with the notification.
CREATE TABLE notification_recipients (
    notification_id uuid NOT NULL REFERENCES notifications (notification_id) ON DELETE CASCADE,
    email           text NOT NULL,
    status          text NOT NULL CHECK (status IN ('SENT', 'FAILED', 'DEFERRED')),
    response        text NOT NULL,            -- the server's answer, or why it was not sent
    attempts        integer NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, email)
);
