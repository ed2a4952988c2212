DROP TABLE silences;
DROP TABLE notification_policies;
