-- depends: 000008_notification_delivery
-- Data plane: least privilege. The aggregator and sender log in as alerting_data_plane; the
-- rule-service's NotificationService (operators list, inspect and retry notifications) logs
-- in as alerting_notification_admin. Neither may touch the control plane's tables.
-- Roles belong to the whole cluster: created here unless they exist (a concurrent migration
-- of another database may be creating them); `migrate up` sets their passwords.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['alerting_data_plane', 'alerting_notification_admin'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it meanwhile
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO alerting_data_plane, alerting_notification_admin;

-- The aggregator upserts and sweeps notifications; the sender claims and records them and
-- each recipient's outcome. Neither deletes.
GRANT SELECT, INSERT, UPDATE ON notifications, notification_recipients TO alerting_data_plane;

-- A retry puts a FAILED notification back to PENDING and deletes its unsent recipients' outcomes.
GRANT SELECT, UPDATE ON notifications TO alerting_notification_admin;
GRANT SELECT, DELETE ON notification_recipients TO alerting_notification_admin;
