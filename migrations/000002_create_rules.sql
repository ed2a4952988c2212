-- depends: 000001_create_clients
-- Control plane (rule-service): a client's rules; '*' matches any value.
CREATE TABLE rules (
    rule_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id  uuid NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    severity   text NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL', '*')),
    source     text NOT NULL CHECK (length(source) BETWEEN 1 AND 256),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    emails     text[] NOT NULL CHECK (cardinality(emails) >= 1),
    enabled    boolean NOT NULL DEFAULT true,
    version    bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rules_not_all_wildcards CHECK (NOT (severity = '*' AND source = '*' AND name = '*'))
);
CREATE INDEX rules_client_id_idx ON rules (client_id, rule_id);
