DROP TABLE rule_outbox;
