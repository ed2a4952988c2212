-- Email receivers no rule names go; one a rule names stops the rollback (its url is NULL).
-- Slack receivers keep their redacted URL: set their URL again after the rollback.
DELETE FROM receivers WHERE kind = 'email' AND NOT EXISTS (
    SELECT 1 FROM rules WHERE receivers.receiver_id = ANY(rules.receiver_ids));
ALTER TABLE receivers
    DROP CONSTRAINT receivers_endpoint_check,
    DROP COLUMN addresses,
    DROP COLUMN url_sealed,
    ALTER COLUMN url SET NOT NULL,
    DROP CONSTRAINT receivers_kind_check,
    ADD CONSTRAINT receivers_kind_check CHECK (kind IN ('webhook', 'slack'));
