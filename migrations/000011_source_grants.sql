-- depends: 000010_api_key_expiry
-- Control plane (rule-service): alerts have owners. An admin grants a client the alerts of
-- a source (prefix false) or of every source that starts with `source` (prefix true); a
-- client's rules match only alerts from sources granted to it, and an alert from a source
-- granted to no client matches no rule. Grant changes travel to the evaluators with the
-- rules: through rule_outbox and `rule.changed` (ops GRANT and REVOKE, no rule_id).
SET LOCAL lock_timeout = '5s';

CREATE TABLE source_grants (
    client_id  uuid NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    source     text NOT NULL CHECK (length(source) BETWEEN 1 AND 256 AND position('*' IN source) = 0),
    prefix     boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The API key that made the grant, or 'migration' for the grants made below.
    created_by text NOT NULL,
    PRIMARY KEY (client_id, source, prefix)
);

-- Existing clients keep what their rules with a concrete source received: each is granted
-- exactly the sources those rules name. Their rules with source '*' match only these
-- sources from now on, and nothing for a client without such rules, until an admin grants
-- more. A source named by several clients' rules is granted to each of them: an admin
-- reviews these grants (created_by 'migration') and revokes what is not theirs.
INSERT INTO source_grants (client_id, source, prefix, created_by)
SELECT DISTINCT client_id, source, false, 'migration' FROM rules
WHERE source <> '*' AND position('*' IN source) = 0;

-- Grant changes in the outbox name no rule.
ALTER TABLE rule_outbox ALTER COLUMN rule_id DROP NOT NULL;
ALTER TABLE rule_outbox DROP CONSTRAINT rule_outbox_op_check;
ALTER TABLE rule_outbox ADD CONSTRAINT rule_outbox_op_check CHECK (op IN ('UPSERT', 'DELETE', 'GRANT', 'REVOKE'));

GRANT SELECT, INSERT, DELETE ON source_grants TO alerting_control_plane;
-- The snapshot rebuild reads the grants with the rules.
GRANT SELECT ON source_grants TO alerting_rule_reader;
