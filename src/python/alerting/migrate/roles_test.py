"""The roles of migrations 000005, 000009, 000011 and 000012, through real logins: each service's
role may do what its service does and nothing more. (The services' own tests run their real
SQL as these roles too.)"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from alerting.common import db
from alerting.common.db import DatabaseRole
from alerting.rules.rebuild import LAST_ISSUED_SEQ
from alerting.rules.records import GRANT_COLUMNS, RULE_COLUMNS
from alerting.testsupport.stack import StackSettings

CONTROL_PLANE_TABLES = ("clients", "rules", "rule_outbox", "api_keys", "source_grants")
# The control plane's tables that the sender reads (000012): how to deliver, and what to mute.
DELIVERY_TABLES = ("notification_policies", "silences")
DATA_PLANE_TABLES = ("notifications", "notification_recipients", "digests", "digest_recipients", "email_sends")
MIGRATION_TABLES = ("_yoyo_migration", "_yoyo_log", "yoyo_lock")


@asynccontextmanager
async def logged_in(settings: StackSettings, role: DatabaseRole) -> AsyncIterator[asyncpg.Connection]:
    connection = await db.connect(settings, role)
    try:
        yield connection
    finally:
        await connection.close()


async def assert_denied(connection: asyncpg.Connection, statement: str, *args: object) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await connection.execute(statement, *args)


async def insert_notification(connection: asyncpg.Connection, status: str = "PENDING") -> uuid.UUID:
    """A notification with one recipient's outcome, as the aggregator and sender write them."""
    notification_id: uuid.UUID = await connection.fetchval(
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status)"
        " VALUES ($1, $2, '{}', '{ops@x.io}', '', $3) RETURNING notification_id",
        uuid.uuid4(), uuid.uuid4().hex, status)
    await connection.execute(
        "INSERT INTO notification_recipients (notification_id, email, status, response, attempts)"
        " VALUES ($1, 'ops@x.io', 'FAILED', '550 no such user', 1)", notification_id)
    return notification_id


async def test_each_service_logs_in_as_its_own_role(stack_settings: StackSettings) -> None:
    users = {}
    for role in db.SERVICE_ROLES:
        async with logged_in(stack_settings, role) as connection:
            users[role] = await connection.fetchval("SELECT current_user")
    assert users == {
        DatabaseRole.CONTROL_PLANE: "alerting_control_plane",
        DatabaseRole.RULE_READER: "alerting_rule_reader",
        DatabaseRole.DATA_PLANE: "alerting_data_plane",
        DatabaseRole.NOTIFICATION_ADMIN: "alerting_notification_admin",
    }


async def test_the_data_plane_roles_cannot_read_the_control_plane_tables(stack_settings: StackSettings) -> None:
    for role in (DatabaseRole.DATA_PLANE, DatabaseRole.NOTIFICATION_ADMIN):
        async with logged_in(stack_settings, role) as connection:
            for table in (*CONTROL_PLANE_TABLES, *MIGRATION_TABLES):
                await assert_denied(connection, f"SELECT * FROM {table}")


async def test_the_control_plane_roles_cannot_touch_notifications(stack_settings: StackSettings) -> None:
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        notification_id = await insert_notification(owner)
    for role in (DatabaseRole.CONTROL_PLANE, DatabaseRole.RULE_READER):
        async with logged_in(stack_settings, role) as connection:
            for table in (*DATA_PLANE_TABLES, *MIGRATION_TABLES):
                await assert_denied(connection, f"SELECT * FROM {table}")
            await assert_denied(connection, "UPDATE notifications SET status = 'SENT'")
            await assert_denied(connection, "DELETE FROM notifications")
            await assert_denied(connection, "UPDATE notification_recipients SET status = 'SENT'")
            await assert_denied(connection, "DELETE FROM notification_recipients")
            await assert_denied(connection, "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert)"
                                            " VALUES ($1, 'a', '{}', '{}', '')", uuid.uuid4())
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        assert await owner.fetchval("SELECT status FROM notifications WHERE notification_id = $1",
                                    notification_id) == "PENDING"


async def test_the_control_plane_reads_and_writes_clients_rules_the_outbox_and_keys(
    stack_settings: StackSettings,
) -> None:
    async with logged_in(stack_settings, DatabaseRole.CONTROL_PLANE) as connection, connection.transaction():
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id")
        await connection.execute("SELECT 1 FROM clients WHERE client_id = $1 FOR UPDATE", client_id)
        rule_id = await connection.fetchval(
            "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, 'HIGH', 'db', '*', '{ops@x.io}')"
            " RETURNING rule_id", client_id)
        await connection.execute("UPDATE rules SET enabled = false, version = version + 1 WHERE rule_id = $1", rule_id)
        seq = await connection.fetchval(
            "INSERT INTO rule_outbox (rule_id, client_id, op, payload) VALUES ($1, $2, 'UPSERT', '') RETURNING seq",
            rule_id, client_id)
        await connection.execute("UPDATE rule_outbox SET published_at = now() WHERE seq = $1", seq)
        await connection.execute(
            "INSERT INTO api_keys (key_id, secret_hash, role, client_id, created_by)"
            " VALUES ('abcdefghijkl', $1, 'TENANT', $2, 'test')", bytes(32), client_id)
        await connection.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = 'abcdefghijkl'")
        await connection.execute("DELETE FROM rule_outbox WHERE seq = $1", seq)
        await connection.execute(
            "INSERT INTO source_grants (client_id, source, prefix, created_by) VALUES ($1, 'db', false, 'test')",
            client_id)
        await connection.execute("INSERT INTO rule_outbox (client_id, op, payload) VALUES ($1, 'GRANT', '')", client_id)
        assert await connection.fetchval("DELETE FROM clients WHERE client_id = $1 RETURNING client_id",
                                         client_id) == client_id
        # The cascade removed the client's rules, keys and grants.
        assert await connection.fetchval("SELECT count(*) FROM rules") == 0
        assert await connection.fetchval("SELECT count(*) FROM api_keys") == 0
        assert await connection.fetchval("SELECT count(*) FROM source_grants") == 0


async def test_the_rule_reader_reads_what_the_rebuild_reads_and_writes_nothing(stack_settings: StackSettings) -> None:
    async with logged_in(stack_settings, DatabaseRole.CONTROL_PLANE) as writer:
        client_id = await writer.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id")
        rule_id = await writer.fetchval(
            "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, 'HIGH', 'db', '*', '{ops@x.io}')"
            " RETURNING rule_id", client_id)
        seq = await writer.fetchval(
            "INSERT INTO rule_outbox (rule_id, client_id, op, payload) VALUES ($1, $2, 'UPSERT', '') RETURNING seq",
            rule_id, client_id)
        await writer.execute(
            "INSERT INTO source_grants (client_id, source, prefix, created_by) VALUES ($1, 'db', true, 'test')",
            client_id)
    async with logged_in(stack_settings, DatabaseRole.RULE_READER) as connection:
        assert [row["rule_id"] for row in await connection.fetch(f"SELECT {RULE_COLUMNS} FROM rules")] == [rule_id]
        grants = await connection.fetch(f"SELECT {GRANT_COLUMNS} FROM source_grants")
        assert [(row["client_id"], row["source"], row["prefix"]) for row in grants] == [(client_id, "db", True)]
        await assert_denied(connection, "DELETE FROM source_grants")
        assert await connection.fetchval(LAST_ISSUED_SEQ) == seq
        await assert_denied(connection, "INSERT INTO rules (client_id, severity, source, name, emails)"
                                        " VALUES ($1, 'HIGH', 'db', '*', '{ops@x.io}')", client_id)
        await assert_denied(connection, "UPDATE rules SET enabled = false")
        await assert_denied(connection, "DELETE FROM rules")
        await assert_denied(connection, "SELECT nextval('rule_outbox_seq_seq')")
        for table in ("clients", "rule_outbox", "api_keys"):
            await assert_denied(connection, f"SELECT * FROM {table}")


async def test_the_control_plane_writes_policies_and_silences_and_the_sender_only_reads_them(
        stack_settings: StackSettings) -> None:
    async with logged_in(stack_settings, DatabaseRole.CONTROL_PLANE) as connection:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id")
        await connection.execute(
            "INSERT INTO notification_policies (client_id, group_wait_seconds, group_interval_seconds, updated_by)"
            " VALUES ($1, 10, 300, 'test')", client_id)
        await connection.execute("UPDATE notification_policies SET version = version + 1 WHERE client_id = $1",
                                 client_id)
        silence_id = await connection.fetchval(
            "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
            " VALUES ($1, '*', 'db', '*', now(), now() + interval '1 hour', 'maintenance', 'test')"
            " RETURNING silence_id", client_id)
        await connection.execute("UPDATE silences SET expired_at = now(), expired_by = 'test' WHERE silence_id = $1",
                                 silence_id)
        # Silences are history: expired, never deleted (a deleted client's go with it, by the cascade).
        await assert_denied(connection, "DELETE FROM silences")
    async with logged_in(stack_settings, DatabaseRole.DATA_PLANE) as connection:
        assert await connection.fetchval("SELECT version FROM notification_policies") == 2
        assert await connection.fetchval("SELECT silence_id FROM silences") == silence_id
        await assert_denied(connection, "UPDATE notification_policies SET group_wait_seconds = 0")
        await assert_denied(connection, "DELETE FROM notification_policies")
        await assert_denied(connection, "INSERT INTO notification_policies (client_id, group_wait_seconds,"
                                        " group_interval_seconds, updated_by) VALUES ($1, 0, 1, 'x')", uuid.uuid4())
        await assert_denied(connection, "UPDATE silences SET expired_at = NULL, expired_by = NULL")
        await assert_denied(connection, "DELETE FROM silences")
    for role in (DatabaseRole.RULE_READER, DatabaseRole.NOTIFICATION_ADMIN):
        async with logged_in(stack_settings, role) as connection:
            for table in DELIVERY_TABLES:
                await assert_denied(connection, f"SELECT * FROM {table}")
    async with logged_in(stack_settings, DatabaseRole.CONTROL_PLANE) as connection:
        await connection.execute("DELETE FROM notification_policies WHERE client_id = $1", client_id)
        await connection.execute("DELETE FROM clients WHERE client_id = $1", client_id)
        assert await connection.fetchval("SELECT count(*) FROM silences") == 0


async def test_the_data_plane_records_and_sends_notifications_and_deletes_nothing(
    stack_settings: StackSettings,
) -> None:
    async with logged_in(stack_settings, DatabaseRole.DATA_PLANE) as connection:
        client_id, alert_id = uuid.uuid4(), uuid.uuid4().hex
        upsert = ("INSERT INTO notifications AS n (client_id, alert_id, rule_ids, emails, alert, published_at)"
                  " VALUES ($1, $2, '{}', '{ops@x.io}', '', now())"
                  " ON CONFLICT (client_id, alert_id) DO UPDATE SET published_at = now() WHERE n.status = 'PENDING'"
                  " RETURNING n.notification_id")
        notification_id = await connection.fetchval(upsert, client_id, alert_id)
        assert await connection.fetchval(upsert, client_id, alert_id) == notification_id
        async with connection.transaction():  # the sender's claim
            assert await connection.fetchval(
                "SELECT notification_id FROM notifications WHERE status = 'PENDING' FOR UPDATE SKIP LOCKED"
            ) == notification_id
            await connection.execute("UPDATE notifications SET attempts = attempts + 1, leased_by = 's1',"
                                      " lease_until = now() + interval '1 minute' WHERE notification_id = $1",
                                      notification_id)
        record = ("INSERT INTO notification_recipients AS r (notification_id, email, status, response, attempts)"
                  " VALUES ($1, 'ops@x.io', $2, '250 ok', 1)"
                  " ON CONFLICT (notification_id, email) DO UPDATE SET status = excluded.status, updated_at = now()")
        await connection.execute(record, notification_id, "DEFERRED")
        await connection.execute(record, notification_id, "SENT")
        await connection.execute("UPDATE notifications SET status = 'SENT', sent_at = now() WHERE notification_id = $1",
                                 notification_id)
        assert await connection.fetchval("SELECT status FROM notification_recipients WHERE notification_id = $1",
                                         notification_id) == "SENT"
        await assert_denied(connection, "DELETE FROM notification_recipients")
        await assert_denied(connection, "DELETE FROM notifications")


async def test_the_data_plane_keeps_digests_and_prunes_only_the_hourly_counts(stack_settings: StackSettings) -> None:
    async with logged_in(stack_settings, DatabaseRole.DATA_PLANE) as connection:
        digest_id = await connection.fetchval(
            "INSERT INTO digests (client_id, group_key, recipients, next_attempt_at) VALUES ($1, 'k', '{ops@x.io}',"
            " now()) RETURNING digest_id", uuid.uuid4())
        await connection.execute("UPDATE digests SET status = 'SENT' WHERE digest_id = $1", digest_id)
        await connection.execute("INSERT INTO digest_recipients (digest_id, email, status, response, attempts)"
                                 " VALUES ($1, 'ops@x.io', 'SENT', '250 ok', 1)", digest_id)
        await connection.execute("INSERT INTO email_sends (client_id, email, sent_at)"
                                 " VALUES ($1, 'ops@x.io', now() - interval '2 hours')", uuid.uuid4())
        assert await connection.execute("DELETE FROM email_sends WHERE sent_at < now() - interval '1 hour'") == (
            "DELETE 1")
        await assert_denied(connection, "DELETE FROM digests")
        await assert_denied(connection, "DELETE FROM digest_recipients")
    async with logged_in(stack_settings, DatabaseRole.NOTIFICATION_ADMIN) as connection:
        assert await connection.fetchval("SELECT status FROM digests WHERE digest_id = $1", digest_id) == "SENT"
        await assert_denied(connection, "UPDATE digests SET status = 'PENDING'")
        await assert_denied(connection, "SELECT * FROM email_sends")


async def test_the_notification_admin_inspects_and_retries_but_records_nothing(stack_settings: StackSettings) -> None:
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        notification_id = await insert_notification(owner, status="FAILED")
    async with logged_in(stack_settings, DatabaseRole.NOTIFICATION_ADMIN) as connection:
        assert await connection.fetchval("SELECT count(*) FROM notifications") == 1
        assert await connection.fetchval("SELECT count(*) FROM notification_recipients") == 1
        async with connection.transaction():  # RetryNotification
            await connection.execute("UPDATE notifications SET status = 'PENDING', retried_at = now()"
                                     " WHERE notification_id = $1 AND status = 'FAILED'", notification_id)
            await connection.execute("DELETE FROM notification_recipients WHERE notification_id = $1"
                                     " AND status <> 'SENT'", notification_id)
        await assert_denied(connection, "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert)"
                                        " VALUES ($1, 'a', '{}', '{}', '')", uuid.uuid4())
        await assert_denied(connection, "INSERT INTO notification_recipients (notification_id, email, status,"
                                        " response, attempts) VALUES ($1, 'a@x.io', 'SENT', '250', 1)", notification_id)
        await assert_denied(connection, "UPDATE notification_recipients SET status = 'SENT'")
        await assert_denied(connection, "DELETE FROM notifications")
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        assert await owner.fetchval("SELECT status FROM notifications") == "PENDING"
        assert await owner.fetchval("SELECT count(*) FROM notification_recipients") == 0


async def test_no_service_role_can_create_a_table_or_a_schema(stack_settings: StackSettings) -> None:
    for role in db.SERVICE_ROLES:
        async with logged_in(stack_settings, role) as connection:
            await assert_denied(connection, "CREATE TABLE mine (x int)")
            await assert_denied(connection, "CREATE TABLE public.mine (x int)")
            await assert_denied(connection, "CREATE SCHEMA mine")


async def test_public_is_granted_nothing_in_the_schema(stack_settings: StackSettings) -> None:
    """Every other role of the cluster may not even look up the platform's tables."""
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        assert await owner.fetchval(
            "SELECT count(*) FROM pg_namespace, aclexplode(nspacl) AS a WHERE nspname = 'public' AND a.grantee = 0"
        ) == 0
        assert await owner.fetchval(
            "SELECT count(*) FROM pg_class AS c, aclexplode(c.relacl) AS a"
            " WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 0") == 0


async def test_the_owner_may_create_databases_but_not_roles_and_the_migration_role_acts_as_it(
    stack_settings: StackSettings,
) -> None:
    """What `deploy/local-stack up` makes of the owner, which tools and tests use, and of the
    migration role: neither is a superuser; only the migration role may create roles (and
    set passwords), and it acts as the owner for everything else."""
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        row = await owner.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        assert tuple(row) == (False, True, False)
        await assert_denied(owner, "CREATE ROLE never_made")
        await assert_denied(owner, "ALTER ROLE alerting_data_plane PASSWORD 'chosen'")
    async with logged_in(stack_settings, DatabaseRole.MIGRATION) as migration:
        row = await migration.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, pg_has_role(current_user, 'alerting', 'MEMBER')"
            " FROM pg_roles WHERE rolname = current_user")
        assert tuple(row) == (False, False, True, True)
    # The owner owns what the migrations made as it.
    async with logged_in(stack_settings, DatabaseRole.OWNER) as owner:
        assert {row["tableowner"] for row in await owner.fetch(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")} == {"alerting"}
