import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from alerting.common import db
from alerting.migrate.main import cli
from alerting.testsupport import stack
from alerting.testsupport.stack import StackSettings

TABLES = {"clients", "rules", "rule_outbox", "api_keys", "source_grants", "notification_policies", "silences",
          "receivers", "notifications", "notification_recipients", "digests", "digest_recipients", "email_sends"}


@pytest.fixture
def empty_database(base_settings: StackSettings) -> Iterator[str]:
    name = stack.unique_name("migrate_test")
    url = asyncio.run(stack.create_database(base_settings.database_url, name))
    yield url
    asyncio.run(stack.drop_database(base_settings.database_url, name))


def run(url: str, *args: str, directory: str | None = None) -> str:
    result = CliRunner().invoke(cli, ["--database-url", url, "--dir", directory or stack.migrations_dir(), *args])
    assert result.exit_code == 0, result.output
    return result.output


async def tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows if not row["tablename"].startswith("_yoyo")
                and row["tablename"] != "yoyo_lock"}
    finally:
        await connection.close()


async def schema_users(url: str) -> set[str]:
    """Who may use the public schema ('' is PUBLIC, everyone)."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT coalesce(pg_get_userbyid(nullif(a.grantee, 0)), '') AS grantee"
            " FROM pg_namespace, aclexplode(nspacl) AS a WHERE nspname = 'public' AND a.privilege_type = 'USAGE'")
        return {row["grantee"] for row in rows}
    finally:
        await connection.close()


async def assert_schema_enforces_the_rules(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id")
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, '*', '*', '*', '{a@b.c}')",
                client_id,
            )
        insert = ("INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert) "
                  "VALUES ($1, 'alert-1', '{}', '{a@b.c}', '')")
        await connection.execute(insert, client_id)
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(insert, client_id)
    finally:
        await connection.close()


def test_up_down_up_cycle(empty_database: str) -> None:
    everything = TABLES
    service_roles = {"alerting_control_plane", "alerting_rule_reader", "alerting_data_plane",
                     "alerting_notification_admin"}
    migrations = sorted(name.removesuffix(".sql") for name in os.listdir(stack.migrations_dir())
                        if name.endswith(".sql") and not name.endswith(".rollback.sql"))
    assert f"applied {len(migrations)} migration(s)" in run(empty_database, "up")
    assert asyncio.run(tables(empty_database)) == everything
    asyncio.run(assert_schema_enforces_the_rules(empty_database))

    assert "applied 0 migration(s)" in run(empty_database, "up")
    assert f"rolled back 1 migration(s)\n  {migrations[-1]}" in run(empty_database, "down")
    assert f"pending  {migrations[-1]}" in run(empty_database, "status")

    run(empty_database, "down", "--all")
    assert asyncio.run(tables(empty_database)) == set()
    # The roles stay (other databases use them), with nothing granted here; PUBLIC is back.
    assert asyncio.run(schema_users(empty_database)) == {"", "pg_database_owner"}

    run(empty_database, "up")
    assert asyncio.run(tables(empty_database)) == everything
    assert asyncio.run(schema_users(empty_database)) == {"pg_database_owner", *service_roles}
    assert "pending" not in run(empty_database, "status")


async def test_up_sets_the_password_of_each_service_role_without_showing_it(
    empty_database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A control-plane login of this test's own (a member of the role, as a login made to
    rotate a password would be), its password given in a file, as in production."""
    login = stack.unique_name("control_login")
    password = secrets.token_urlsafe(16)
    (tmp_path / "password").write_text(password + "\n")
    run(empty_database, "up")
    # Only the migration role may create a role.
    migration = await db.connect(StackSettings(database_url=empty_database), db.DatabaseRole.MIGRATION)
    try:
        await migration.execute(f"CREATE ROLE {login} LOGIN IN ROLE alerting_control_plane")
        monkeypatch.setenv("ALERTING_CONTROL_PLANE_DATABASE_USER", login)
        monkeypatch.delenv("ALERTING_CONTROL_PLANE_DATABASE_PASSWORD", raising=False)
        monkeypatch.setenv("ALERTING_CONTROL_PLANE_DATABASE_PASSWORD_FILE", str(tmp_path / "password"))

        output = run(empty_database, "up")
        assert f"set the password of {login}\n" in output
        assert password not in output

        settings = StackSettings(database_url=empty_database)
        connection = await db.connect(settings, db.DatabaseRole.CONTROL_PLANE)
        try:
            assert await connection.fetchval("SELECT count(*) FROM clients") == 0
        finally:
            await connection.close()
        wrong = settings.model_copy(update={"control_plane_database_password": SecretStr(password + "x")})
        with pytest.raises(asyncpg.InvalidPasswordError):
            await db.connect(wrong, db.DatabaseRole.CONTROL_PLANE)
    finally:
        await migration.execute(f"DROP ROLE IF EXISTS {login}")
        await migration.close()


def test_the_owner_password_may_come_from_its_own_setting(
    empty_database: str, base_settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production the URL carries no password: ALERTING_DATABASE_PASSWORD does."""
    monkeypatch.setenv("ALERTING_DATABASE_PASSWORD", db.login(base_settings, db.DatabaseRole.OWNER)[1] or "")
    user = db.login(base_settings, db.DatabaseRole.OWNER)[0]
    without_password = db.address(empty_database).replace("://", f"://{user}@", 1)
    assert "pending  000001_create_clients" in run(without_password, "status")


def test_check_passes_on_the_real_folder_and_fails_on_a_gap(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--dir", stack.migrations_dir(), "check"])
    assert result.exit_code == 0, result.output

    for name in ("000001_a.sql", "000001_a.rollback.sql", "000003_c.sql", "000003_c.rollback.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path), "check"])
    assert result.exit_code == 1
    assert "000002 is missing before 000003" in result.output


def test_check_fails_on_a_missing_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--dir", str(tmp_path / "nowhere"), "check"])
    assert result.exit_code == 1
    assert f"migrations folder {tmp_path / 'nowhere'} not found" in result.output
    assert "consistent" not in result.output


def test_up_refuses_an_inconsistent_folder(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "000001_a.sql").write_text("CREATE TABLE a (x int);")
    result = CliRunner().invoke(cli, ["--database-url", empty_database, "--dir", str(tmp_path), "up"])
    assert result.exit_code != 0
    assert "missing its rollback" in result.output


async def test_up_waits_for_a_database_that_is_not_there_yet(base_settings: StackSettings) -> None:
    name = stack.unique_name("late_migrate")
    url = stack.with_database(base_settings.database_url, name)
    migrating = asyncio.create_task(asyncio.to_thread(
        CliRunner().invoke, cli, ["--database-url", url, "--dir", stack.migrations_dir(), "up"]))
    try:
        await asyncio.sleep(1.5)
        assert not migrating.done(), "migrate gave up (or found a database that does not exist)"
        await stack.create_database(base_settings.database_url, name)
        result = await asyncio.wait_for(migrating, 60)
        assert result.exit_code == 0, result.output
        assert "database not reachable yet, retrying" in result.output
        assert await tables(url) == TABLES
    finally:
        await stack.drop_database(base_settings.database_url, name)


def since(migration: str) -> list[str]:
    """`migration` and every migration applied after it (yoyo applies them in file-name order)."""
    return sorted(name.removesuffix(".sql") for name in os.listdir(stack.migrations_dir())
                  if name.endswith(".sql") and not name.endswith(".rollback.sql") and name >= migration)


def roll_back_to_before(url: str, migration: str) -> None:
    """Roll back `migration` and every one applied after it."""
    later = since(migration)
    assert run(url, "down", "--steps", str(len(later))) == (
        f"rolled back {len(later)} migration(s)" + "".join(f"\n  {name}" for name in reversed(later)) + "\n")


async def test_000011_grants_each_existing_client_the_sources_its_rules_name(empty_database: str) -> None:
    """Existing clients keep what their rules with a concrete source received; a rule with
    source '*' gets no grant of its own, so it matches only those sources from then on."""
    run(empty_database, "up")
    roll_back_to_before(empty_database, "000011_source_grants")
    connection = await asyncpg.connect(empty_database)
    try:
        clients = {}
        for name, patterns in {"a": [("HIGH", "db", "*"), ("*", "*", "disk"), ("LOW", "db.replica", "*"),
                                     ("*", "db", "load")],
                               "b": [("*", "payments", "*"), ("*", "db", "*")],
                               "c": [("*", "*", "x")]}.items():
            clients[name] = await connection.fetchval(
                "INSERT INTO clients (name) VALUES ($1) RETURNING client_id::text", name)
            for severity, source, rule_name in patterns:
                await connection.execute(
                    "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, $2, $3, $4, '{a@b.c}')",
                    clients[name], severity, source, rule_name)
        await connection.execute("INSERT INTO rule_outbox (rule_id, client_id, op, payload)"
                                 " VALUES (gen_random_uuid(), $1, 'UPSERT', '')", clients["a"])
        later = since("000011_source_grants")
        assert f"applied {len(later)} migration(s)" + "".join(f"\n  {name}" for name in later) in run(
            empty_database, "up")
        rows = await connection.fetch("SELECT client_id::text, source, prefix, created_by FROM source_grants")
        # Grant changes go through the outbox like rule changes, naming no rule.
        await connection.execute("INSERT INTO rule_outbox (client_id, op, payload) VALUES ($1, 'GRANT', '')",
                                 clients["c"])
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute("INSERT INTO source_grants (client_id, source, prefix, created_by)"
                                     " VALUES ($1, 'team-*', true, 'x')", clients["c"])
        roll_back_to_before(empty_database, "000011_source_grants")  # the grant change goes with the grants
        remaining = await connection.fetch("SELECT op FROM rule_outbox")
    finally:
        await connection.close()
    assert sorted((row["client_id"], row["source"], row["prefix"], row["created_by"]) for row in rows) == sorted([
        (clients["a"], "db", False, "migration"), (clients["a"], "db.replica", False, "migration"),
        (clients["b"], "payments", False, "migration"), (clients["b"], "db", False, "migration")])
    assert [row["op"] for row in remaining] == ["UPSERT"]


@pytest.mark.parametrize("statement", [
    "INSERT INTO notification_policies (client_id, group_by, group_wait_seconds, group_interval_seconds, updated_by)"
    " VALUES ($1, '{alert_id}', 10, 300, 'x')",
    "INSERT INTO notification_policies (client_id, group_wait_seconds, group_interval_seconds, updated_by)"
    " VALUES ($1, 3601, 300, 'x')",
    "INSERT INTO notification_policies (client_id, group_wait_seconds, group_interval_seconds, updated_by)"
    " VALUES ($1, 10, 0, 'x')",
    "INSERT INTO notification_policies (client_id, group_wait_seconds, group_interval_seconds, max_emails_per_hour,"
    " updated_by) VALUES ($1, 10, 300, 0, 'x')",
    "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
    " VALUES ($1, '*', 'db', '*', now(), now(), 'why', 'x')",
    "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
    " VALUES ($1, 'high', 'db', '*', now(), now() + interval '1 hour', 'why', 'x')",
    "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
    " VALUES ($1, '*', '', '*', now(), now() + interval '1 hour', 'why', 'x')",
    "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
    " VALUES ($1, '*', 'db', '*', now(), now() + interval '1 hour', '', 'x')",
    "INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by, expired_at)"
    " VALUES ($1, '*', 'db', '*', now(), now() + interval '1 hour', 'why', 'x', now())",
])
async def test_000012_refuses_policies_and_silences_the_api_would_refuse(stack_settings: StackSettings,
                                                                        statement: str) -> None:
    connection = await asyncpg.connect(stack_settings.database_url)
    try:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id")
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(statement, client_id)
    finally:
        await connection.close()
