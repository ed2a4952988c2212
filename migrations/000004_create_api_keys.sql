-- depends: 000003_create_rule_outbox
-- Control plane (rule-service): API keys, and who made each change. A key is
-- `ak_<key_id>.<secret>`; only the SHA-256 of its secret is kept. An ADMIN key manages
-- clients and keys; a TENANT key is confined to its client.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY CHECK (key_id ~ '^[a-z2-7]{12}$'),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    role        text NOT NULL CHECK (role IN ('ADMIN', 'TENANT')),
    client_id   uuid REFERENCES clients (client_id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_by  text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CONSTRAINT api_keys_tenant_has_client CHECK ((role = 'TENANT') = (client_id IS NOT NULL))
);
CREATE INDEX api_keys_client_id_idx ON api_keys (client_id, key_id);

-- The key id that made the last change ('' for rows written before keys existed).
ALTER TABLE clients ADD COLUMN updated_by text NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN updated_by text NOT NULL DEFAULT '';
