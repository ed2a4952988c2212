-- depends: 000011_source_grants
-- Control plane (rule-service): how a client's notifications are delivered, never whether
-- they are recorded. A client's notification policy groups its notifications into digests
-- and caps its emails per recipient and hour; no row: the platform's default policy. A
-- silence mutes the client's notifications that match it while it is active:
-- starts_at <= t < ends_at, and t < expired_at once it was expired early. The rule-service
-- writes both tables; the sender (alerting_data_plane) only reads them, at delivery.
-- The CHECKs mirror alerting/rules/policies.py and alerting/rules/silences.py.
SET LOCAL lock_timeout = '5s';  -- the foreign keys lock clients briefly

CREATE TABLE notification_policies (
    client_id              uuid PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
    group_by               text[] NOT NULL DEFAULT '{}'
                           CHECK (group_by <@ ARRAY['severity', 'source', 'name', 'rule']::text[]),
    group_wait_seconds     integer NOT NULL CHECK (group_wait_seconds BETWEEN 0 AND 3600),
    group_interval_seconds integer NOT NULL CHECK (group_interval_seconds BETWEEN 1 AND 86400),
    max_emails_per_hour    integer CHECK (max_emails_per_hour BETWEEN 1 AND 100000),  -- NULL: the platform's default
    version                bigint NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by             text NOT NULL
);

CREATE TABLE silences (
    silence_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   uuid NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    severity    text NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL', '*')),
    source      text NOT NULL CHECK (length(source) BETWEEN 1 AND 256),   -- exact, or '*'
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),     -- exact, or '*'
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    comment     text NOT NULL CHECK (length(comment) BETWEEN 1 AND 1000),
    created_by  text NOT NULL,   -- the API key id, as rules' updated_by
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz,     -- set when expired early (ExpireSilence), never cleared
    expired_by  text,
    CONSTRAINT silences_expired_by_whom CHECK ((expired_at IS NULL) = (expired_by IS NULL))
);
-- The sender's question: which of a client's silences have not ended yet.
CREATE INDEX silences_client_ends_idx ON silences (client_id, ends_at);

-- A policy is set, changed and reset to the default; a silence is created and expired,
-- never deleted (the history of who muted what; a deleted client's go with it).
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_policies TO alerting_control_plane;
GRANT SELECT, INSERT, UPDATE ON silences TO alerting_control_plane;
-- The sender reads both at delivery and writes neither.
GRANT SELECT ON notification_policies, silences TO alerting_data_plane;
