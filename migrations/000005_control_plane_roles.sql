-- depends: 000004_create_api_keys
-- Control plane (rule-service): least privilege. The rule-service logs in as
-- alerting_control_plane, which reads and writes the control plane's tables and no other;
-- the rule-updater and evaluator log in as alerting_rule_reader, which only reads rules
-- (the snapshot rebuild). Roles belong to the whole cluster: the first database migrated
-- creates them, a concurrent migration of another database may be creating them at the same
-- moment, and `migrate up` sets their passwords (MIGRATION_STRATEGY.md, "Roles").
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['alerting_control_plane', 'alerting_rule_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it meanwhile
            END;
        END IF;
    END LOOP;
END
$$;

-- Only the roles granted it may use the schema, and only its owner may create in it.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO alerting_control_plane, alerting_rule_reader;

GRANT SELECT, INSERT, UPDATE, DELETE ON clients, rules, rule_outbox, api_keys TO alerting_control_plane;
GRANT USAGE ON SEQUENCE rule_outbox_seq_seq TO alerting_control_plane;  -- rule_outbox.seq's identity

-- The rebuild reads the rules, and the last seq the outbox issued (pg_sequence_last_value).
GRANT SELECT ON rules TO alerting_rule_reader;
GRANT SELECT ON SEQUENCE rule_outbox_seq_seq TO alerting_rule_reader;
