-- FAILED rows go back to PENDING: the sender tries them again.
UPDATE notifications SET status = 'PENDING' WHERE status = 'FAILED';
ALTER TABLE notifications DROP COLUMN failure;
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check CHECK (status IN ('PENDING', 'SENT'));
