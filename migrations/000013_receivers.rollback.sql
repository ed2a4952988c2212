ALTER TABLE rules
    DROP CONSTRAINT rules_endpoints_check,
    DROP COLUMN receiver_ids,
    ADD CONSTRAINT rules_emails_check CHECK (cardinality(emails) >= 1);
DROP TABLE receivers;
