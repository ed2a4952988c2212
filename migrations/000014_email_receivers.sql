-- depends: 000013_receivers
-- Control plane (rule-service): a named email receiver, a list of addresses that rules name
-- as they name a webhook, so that a team's addresses live in one place. It has addresses and
-- no URL; a webhook or Slack receiver has a URL and no addresses. A rule's own `emails` stay
-- what they were (an inline list of addresses).
-- A Slack incoming webhook's URL is a credential (whoever holds it posts to the channel): it
-- is kept sealed in url_sealed, like a webhook's secret, and `url` shows it redacted. Slack
-- receivers saved before keep a plain URL until it is set again (UpdateReceiver).
SET LOCAL lock_timeout = '5s';  -- the new column and checks lock the small receivers table briefly

ALTER TABLE receivers
    DROP CONSTRAINT receivers_kind_check,
    ADD CONSTRAINT receivers_kind_check CHECK (kind IN ('email', 'webhook', 'slack')),
    ALTER COLUMN url DROP NOT NULL,
    ADD COLUMN addresses text[] NOT NULL DEFAULT '{}' CHECK (cardinality(addresses) <= 100),
    ADD COLUMN url_sealed bytea CHECK (url_sealed IS NULL OR kind = 'slack'),
    ADD CONSTRAINT receivers_endpoint_check CHECK (
        CASE WHEN kind = 'email' THEN url IS NULL AND cardinality(addresses) >= 1
             ELSE url IS NOT NULL AND cardinality(addresses) = 0 END);
