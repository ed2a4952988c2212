-- Code before policies knows no SILENCED: such notifications stay undelivered, as FAILED
-- with the reason. Those waiting in a digest are PENDING and never attempted: the
-- aggregator's sweeper publishes them again, and they are sent one by one.
UPDATE notifications SET status = 'FAILED', failure = 'silenced by ' || silenced_by WHERE status = 'SILENCED';
DROP TABLE email_sends;
DROP TABLE digest_recipients;
DROP TABLE digests;
DROP INDEX notifications_digest_idx;
ALTER TABLE notifications DROP COLUMN silenced_by, DROP COLUMN digest_id;
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('PENDING', 'SENT', 'FAILED'));
