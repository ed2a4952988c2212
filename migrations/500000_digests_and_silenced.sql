-- depends: 000009_data_plane_roles
-- Data plane (sender): delivery follows each tenant's policy (docs/architecture/ARCHITECTURE.md,
-- "Delivery policy"). A notification may be SILENCED (by the silence silenced_by), or wait
-- in a digest (digest_id) and be delivered in it. A digest is open (joinable) until it is
-- first claimed for sending (attempts > 0); one open digest per group at most.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'SILENCED'));
ALTER TABLE notifications
    ADD COLUMN digest_id   uuid,   -- the digest it waits in, and was delivered in
    ADD COLUMN silenced_by uuid;   -- the silence that muted it
CREATE INDEX notifications_digest_idx ON notifications (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE digests (
    digest_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id       uuid NOT NULL,
    group_key       text NOT NULL,           -- the group's values and recipients, as routing.group_key writes it
    recipients      text[] NOT NULL,
    status          text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'FAILED', 'SILENCED')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    flushed_at      timestamptz,             -- first claimed for sending: its members are fixed from then
    sent_at         timestamptz,
    next_attempt_at timestamptz NOT NULL,    -- when it is due (its flush, a retry, or when the limit allows)
    attempts        integer NOT NULL DEFAULT 0,
    lease_until     timestamptz,
    leased_by       text,
    last_error      text,
    failure         text
);
CREATE UNIQUE INDEX digests_open_key ON digests (client_id, group_key) WHERE status = 'PENDING' AND attempts = 0;
CREATE INDEX digests_due_idx ON digests (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX digests_group_flushed_idx ON digests (client_id, group_key, flushed_at);

CREATE TABLE digest_recipients (
    digest_id  uuid NOT NULL REFERENCES digests (digest_id) ON DELETE CASCADE,
    email      text NOT NULL,
    status     text NOT NULL CHECK (status IN ('SENT', 'FAILED', 'DEFERRED')),
    response   text NOT NULL,
    attempts   integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (digest_id, email)
);

-- Every email accepted for a recipient, for the per-hour limit; rows older than the hour
-- that counts are deleted by the sender.
CREATE TABLE email_sends (
    client_id uuid NOT NULL,
    email     text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_sends_recipient_idx ON email_sends (client_id, email, sent_at);

GRANT SELECT, INSERT, UPDATE ON digests, digest_recipients TO alerting_data_plane;
GRANT SELECT, INSERT, DELETE ON email_sends TO alerting_data_plane;
GRANT SELECT ON digests, digest_recipients TO alerting_notification_admin;
