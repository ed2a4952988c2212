-- The roles stay: they belong to the whole cluster and other databases may use them. Only
-- what this database granted is taken back.
REVOKE ALL ON clients, rules, rule_outbox, api_keys FROM alerting_control_plane, alerting_rule_reader;
REVOKE ALL ON SEQUENCE rule_outbox_seq_seq FROM alerting_control_plane, alerting_rule_reader;
REVOKE ALL ON SCHEMA public FROM alerting_control_plane, alerting_rule_reader;
GRANT USAGE ON SCHEMA public TO PUBLIC;
