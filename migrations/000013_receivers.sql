-- depends: 000012_notification_policies_and_silences
-- Control plane (rule-service): a client's receivers, the webhook and Slack endpoints its
-- rules name beside their email addresses. A webhook's signing secret is stored sealed
-- (alerting/rules/receivers.py: Fernet under a key only the rule-service and the sender
-- hold); a Slack receiver has none. A rule now has at least one endpoint: an address or a
-- receiver. The sender (alerting_data_plane) reads receivers at each attempt.
SET LOCAL lock_timeout = '5s';  -- the foreign key and the rules' new column lock briefly

CREATE TABLE receivers (
    receiver_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id     uuid NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    kind          text NOT NULL CHECK (kind IN ('webhook', 'slack')),
    url           text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    secret_sealed bytea,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text NOT NULL,
    CONSTRAINT receivers_client_name_key UNIQUE (client_id, name),
    CONSTRAINT receivers_webhooks_sign CHECK ((kind = 'webhook') = (secret_sealed IS NOT NULL))
);

ALTER TABLE rules
    ADD COLUMN receiver_ids uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(receiver_ids) <= 20),
    DROP CONSTRAINT rules_emails_check,
    ADD CONSTRAINT rules_endpoints_check CHECK (cardinality(emails) + cardinality(receiver_ids) >= 1);

GRANT SELECT, INSERT, UPDATE, DELETE ON receivers TO alerting_control_plane;
GRANT SELECT ON receivers TO alerting_data_plane;
