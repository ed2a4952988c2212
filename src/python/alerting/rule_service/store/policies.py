"""Notification policies in Postgres: each client's own, where it set one."""

from __future__ import annotations

from typing import NoReturn

import asyncpg

from alerting.rule_service.errors import NotFound, StaleVersion
from alerting.rule_service.store import clients
from alerting.rules.policies import Policy
from alerting.v1 import notification_policy_service_pb2 as api

FIELDS = ("group_by", "group_wait_seconds", "group_interval_seconds", "max_emails_per_hour", "version", "created_at",
          "updated_at", "updated_by")
COLUMNS = ", ".join(("client_id", *FIELDS))
# The client, with its policy's fields (NULL where it has none of its own).
GET = (f"SELECT c.client_id, {', '.join(f'p.{field}' for field in FIELDS)} FROM clients AS c"
       " LEFT JOIN notification_policies AS p ON p.client_id = c.client_id WHERE c.client_id = $1")
# The client, with its policy's version (NULL: none of its own): why a write matched nothing.
CURRENT_VERSION = ("SELECT (SELECT version FROM notification_policies AS p WHERE p.client_id = c.client_id)"
                   " AS version FROM clients AS c WHERE c.client_id = $1")


def policy_message(row: asyncpg.Record) -> api.NotificationPolicy:
    policy = api.NotificationPolicy(
        client_id=str(row["client_id"]), group_by=list(row["group_by"]), group_wait_seconds=row["group_wait_seconds"],
        group_interval_seconds=row["group_interval_seconds"], max_emails_per_hour=row["max_emails_per_hour"] or 0,
        version=row["version"], updated_by=row["updated_by"])
    policy.created_at.FromDatetime(row["created_at"])
    policy.updated_at.FromDatetime(row["updated_at"])
    return policy


async def get(pool: asyncpg.Pool, client_id: str) -> api.NotificationPolicy | None:
    """The client's own policy; None when it has none; NotFound without the client."""
    row = await pool.fetchrow(GET, client_id)
    if row is None:
        raise NotFound(f"client_id: no client {client_id}")
    return None if row["version"] is None else policy_message(row)


async def save(pool: asyncpg.Pool, client_id: str, policy: Policy, version: int, changed_by: str
               ) -> api.NotificationPolicy:
    """The client's policy replaced at `version` (0: it has none of its own yet)."""
    fields = (list(policy.group_by), policy.group_wait_seconds, policy.group_interval_seconds,
              policy.max_emails_per_hour, changed_by)
    async with pool.acquire() as connection, connection.transaction():
        if version == 0:  # none stored yet: the first of the client's own
            await clients.lock_existing(connection, client_id, "KEY SHARE")
            row = await connection.fetchrow(
                f"INSERT INTO notification_policies (client_id, group_by, group_wait_seconds,"
                f" group_interval_seconds, max_emails_per_hour, updated_by) VALUES ($1, $2, $3, $4, $5, $6)"
                f" ON CONFLICT (client_id) DO NOTHING RETURNING {COLUMNS}", client_id, *fields)
        else:
            row = await connection.fetchrow(
                f"UPDATE notification_policies SET group_by = $2, group_wait_seconds = $3,"
                f" group_interval_seconds = $4, max_emails_per_hour = $5, updated_by = $6,"
                f" version = version + 1, updated_at = now() WHERE client_id = $1 AND version = $7"
                f" RETURNING {COLUMNS}", client_id, *fields, version)
        if row is None:
            await _explain_missed_write(connection, client_id, version)
    return policy_message(row)


async def delete(pool: asyncpg.Pool, client_id: str, version: int) -> None:
    """The client's own policy (at `version`, unless 0) deleted."""
    async with pool.acquire() as connection, connection.transaction():
        deleted = await connection.fetchval(
            "DELETE FROM notification_policies WHERE client_id = $1 AND ($2 = 0 OR version = $2)"
            " RETURNING version", client_id, version)
        if deleted is None:
            await _explain_missed_write(connection, client_id, version)


async def _explain_missed_write(connection: asyncpg.Connection, client_id: str, version: int) -> NoReturn:
    """A conditional write matched nothing: say whether the client is missing, has no
    policy of its own to delete, or has another version than the one expected."""
    current = await connection.fetchrow(CURRENT_VERSION, client_id)
    if current is None:
        raise NotFound(f"client_id: no client {client_id}")
    if current["version"] is None and version == 0:
        raise NotFound(f"client_id: client {client_id} has no notification policy of its own")
    raise StaleVersion(f"expected_version: is {version}, the current version is {current['version'] or 0}")
