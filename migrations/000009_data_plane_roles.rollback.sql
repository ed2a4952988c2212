-- The roles stay: they belong to the whole cluster and other databases may use them. Only
-- what this database granted is taken back.
REVOKE ALL ON notifications, notification_recipients FROM alerting_data_plane, alerting_notification_admin;
REVOKE ALL ON SCHEMA public FROM alerting_data_plane, alerting_notification_admin;
