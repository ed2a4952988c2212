DROP TABLE notification_recipients;
DROP INDEX notifications_client_status_idx;
DROP INDEX notifications_due_idx;
ALTER TABLE notifications
    DROP COLUMN last_error,
    DROP COLUMN lease_until,
    DROP COLUMN next_attempt_at,
    DROP COLUMN attempts;
