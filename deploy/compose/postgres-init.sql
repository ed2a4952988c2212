-- Run once by the postgres image on an empty data directory, as the super user `postgres`
-- over the socket (/docker-entrypoint-initdb.d): the owner and the migration role, as
-- deploy/local-stack makes them (migrations/MIGRATION_STRATEGY.md, "Roles"). The owner
-- `alerting` owns the database and creates nothing but what migrations make; the migration
-- role `alerting_migrator` runs the migrations acting as the owner (it is a member), and
-- alone may create roles and set their passwords. Neither is a super user. The passwords
-- come from the files of the credentials job (psql reads them; no command line holds one).
\set owner_password `cat /credentials/alerting.password`
\set migrator_password `cat /credentials/alerting_migrator.password`
SET client_min_messages = warning;
CREATE ROLE alerting LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE alerting_migrator LOGIN NOSUPERUSER NOCREATEDB CREATEROLE PASSWORD :'migrator_password';
GRANT alerting TO alerting_migrator;
CREATE DATABASE alerting OWNER alerting;
