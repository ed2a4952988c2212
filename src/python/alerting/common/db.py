"""Connections to Postgres, each logged in as one of the platform's roles, and the asyncpg
pool, opened with retries so a service can start before Postgres.

The roles and what each may do are in migrations/ (MIGRATION_STRATEGY.md, "Roles"):
every service connects with only the privileges it needs."""

from __future__ import annotations

import asyncio
import enum
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from alerting.common.retry import retry_until_done
from alerting.common.settings import DatabaseSettings, MigrationLogin, secret_value


class DatabaseRole(enum.Enum):
    OWNER = "owner"  # owns the schema; tools and tests
    MIGRATION = "migration"  # runs the migrations: creates roles and sets their passwords, else acts as the owner
    CONTROL_PLANE = "control_plane"  # rule-service: clients, rules, rule_outbox, api_keys
    RULE_READER = "rule_reader"  # rule-updater, evaluator: reads rules to rebuild the snapshot
    DATA_PLANE = "data_plane"  # aggregator, sender: notifications and their recipients
    NOTIFICATION_ADMIN = "notification_admin"  # rule-service's NotificationService: inspect, retry


# The roles `migrate up` sets the password of: every one but the owner.
SERVICE_ROLES = (
    DatabaseRole.CONTROL_PLANE, DatabaseRole.RULE_READER, DatabaseRole.DATA_PLANE, DatabaseRole.NOTIFICATION_ADMIN
)


def login(settings: DatabaseSettings, role: DatabaseRole) -> tuple[str | None, str | None]:
    """The user and password `role` logs in with (None: libpq's defaults apply). A process's
    settings carry the logins of the roles it uses (common.settings.database)."""
    if role is DatabaseRole.OWNER:
        url = urlsplit(settings.database_url)
        password = secret_value(settings.database_password) or unquote(url.password or "")
        return unquote(url.username or "") or None, password or None
    user = getattr(settings, f"{role.value}_database_user", None)
    if user is None:
        raise TypeError(f"{type(settings).__name__} carries no login of the {role.value} role")
    return user, secret_value(getattr(settings, f"{role.value}_database_password")) or None


def address(database_url: str) -> str:
    """The URL without its user and password: where the database is, with its options."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def owner_url(settings: DatabaseSettings) -> str:
    """database_url with the owner's login in it, for what takes a URL alone (tests that
    connect with the URL)."""
    return role_login_url(settings, DatabaseRole.OWNER)


def role_login_url(settings: DatabaseSettings, role: DatabaseRole) -> str:
    """database_url logged in as `role`, for what takes a URL alone."""
    return _with_login(settings.database_url, *login(settings, role))


def migration_url(settings: MigrationLogin) -> str:
    """database_url logged in as the migration role, every session of it acting as the owner
    (`options=-c role=<owner>`), for yoyo: what the migrations create belongs to the owner,
    and the migration role's CREATEROLE serves only sessions without that option."""
    owner, _ = login(settings, DatabaseRole.OWNER)
    return _with_login(settings.database_url, *login(settings, DatabaseRole.MIGRATION), f"-c role={owner}")


def _with_login(database_url: str, user: str | None, password: str | None, options: str = "") -> str:
    parts = urlsplit(address(database_url))
    credentials = quote(user or "", safe="") + (f":{quote(password, safe='')}" if password else "")
    query = "&".join(filter(None, [parts.query, options and "options=" + quote(options, safe="")]))
    return urlunsplit(parts._replace(netloc=f"{credentials}@{parts.netloc}" if credentials else parts.netloc,
                                     query=query))


def connect_options(settings: DatabaseSettings, role: DatabaseRole) -> dict[str, Any]:
    """asyncpg's dsn, user and password for logging in as `role`; the URL's own credentials
    never reach another role's login."""
    user, password = login(settings, role)
    return {"dsn": address(settings.database_url), "user": user, "password": password}


async def connect(settings: DatabaseSettings, role: DatabaseRole) -> asyncpg.Connection:
    return await asyncpg.connect(**connect_options(settings, role))


async def end_open_transaction(connection: asyncpg.Connection) -> None:
    """What a data-plane connection needs when it goes back to its pool: asyncpg's default
    reset (a round trip of UNLISTEN, RESET ALL, advisory unlock, ...) for every statement cost
    the sender a tenth of its CPU, and the data plane keeps no session state; a transaction
    left open (a cancelled statement) is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def create_pool(
    settings: DatabaseSettings, role: DatabaseRole, stop: asyncio.Event | None = None, **overrides: Any
) -> asyncpg.Pool:
    options: dict[str, Any] = dict(min_size=1, max_size=settings.database_pool_size, command_timeout=60)
    if role == DatabaseRole.DATA_PLANE:
        options["reset"] = end_open_transaction
    options.update(overrides)

    async def open_pool() -> asyncpg.Pool:
        return await asyncpg.create_pool(**connect_options(settings, role), **options)

    return await retry_until_done(open_pool, settings, what=f"connecting to Postgres as {role.value}", stop=stop)
