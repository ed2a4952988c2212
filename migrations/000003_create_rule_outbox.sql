-- depends: 000002_create_rules
-- Control plane (rule-service): the transactional outbox of `rule.changed`. A change is
-- written here in the transaction that makes it; a relay publishes rows in seq order.
CREATE TABLE rule_outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id      uuid NOT NULL,
    client_id    uuid NOT NULL,
    op           text NOT NULL CHECK (op IN ('UPSERT', 'DELETE')),
    payload      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX rule_outbox_unpublished_idx ON rule_outbox (seq) WHERE published_at IS NULL;
