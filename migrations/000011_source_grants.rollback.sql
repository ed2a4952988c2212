-- Grant changes not published yet go with the grants.
DELETE FROM rule_outbox WHERE op IN ('GRANT', 'REVOKE');
ALTER TABLE rule_outbox DROP CONSTRAINT rule_outbox_op_check;
ALTER TABLE rule_outbox ADD CONSTRAINT rule_outbox_op_check CHECK (op IN ('UPSERT', 'DELETE'));
ALTER TABLE rule_outbox ALTER COLUMN rule_id SET NOT NULL;
DROP TABLE source_grants;
