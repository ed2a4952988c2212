-- depends: 000006_create_notifications
-- A notification the mail server refused for good (a 5xx answer) is FAILED, with the
-- server's reason, rather than retried forever and stalling every other notification.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('PENDING', 'SENT', 'FAILED'));
ALTER TABLE notifications ADD COLUMN failure text;
