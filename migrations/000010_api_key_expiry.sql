-- depends: 000009_data_plane_roles
-- Control plane (rule-service): an API key may expire. NULL: never (every key made before
-- this migration). The rule-service refuses a key from expires_at on, and counts only
-- unexpired keys as valid (the last valid ADMIN key, a client's key quota).
-- A nullable column without a default rewrites nothing: instant, whatever the table's size.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
