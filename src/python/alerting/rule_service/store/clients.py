"""Clients (tenants) in Postgres, and the lock on a client's row under which its rules, keys,
silences and policy change."""

from __future__ import annotations

from typing import Literal

import asyncpg

from alerting.rule_service import outbox
from alerting.rule_service.errors import NotFound
from alerting.rule_service.store.rows import explain_missed_write, page
from alerting.rules.changelog import DELETE, REVOKE
from alerting.rules.records import GRANT_COLUMNS, grant_from_row
from alerting.v1 import rule_pb2

COLUMNS = "client_id, name, version, created_at, updated_at, updated_by"


def client_message(row: asyncpg.Record) -> rule_pb2.Client:
    client = rule_pb2.Client(client_id=str(row["client_id"]), name=row["name"], version=row["version"],
                             updated_by=row["updated_by"])
    client.created_at.FromDatetime(row["created_at"])
    client.updated_at.FromDatetime(row["updated_at"])
    return client


async def lock(connection: asyncpg.Connection, client_id: str,
               strength: Literal["UPDATE", "NO KEY UPDATE", "KEY SHARE"]) -> bool:
    """Lock the client's row until the transaction ends; whether there is one."""
    return await connection.fetchval(f"SELECT 1 FROM clients WHERE client_id = $1 FOR {strength}", client_id) == 1


async def lock_existing(connection: asyncpg.Connection, client_id: str,
                        strength: Literal["NO KEY UPDATE", "KEY SHARE"] = "NO KEY UPDATE") -> None:
    """Lock the client's row (by default so that the client's creations take turns, and none
    goes past a quota); NotFound without one."""
    if not await lock(connection, client_id, strength):
        raise NotFound(f"client_id: no client {client_id}")


async def create(pool: asyncpg.Pool, name: str, created_by: str) -> rule_pb2.Client:
    row = await pool.fetchrow(
        f"INSERT INTO clients (name, updated_by) VALUES ($1, $2) RETURNING {COLUMNS}", name, created_by)
    return client_message(row)


async def get(pool: asyncpg.Pool, client_id: str) -> rule_pb2.Client:
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM clients WHERE client_id = $1", client_id)
    if row is None:
        raise NotFound(f"client_id: no client {client_id}")
    return client_message(row)


async def list_page(pool: asyncpg.Pool, visible_client: str | None, after: str | None, size: int
                    ) -> tuple[list[rule_pb2.Client], str | None]:
    """Clients by id after `after` (only `visible_client`, when set); the last id when more follow."""
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM clients WHERE ($1::uuid IS NULL OR client_id > $1::uuid)"
        " AND ($3::uuid IS NULL OR client_id = $3::uuid) ORDER BY client_id LIMIT $2",
        after, size + 1, visible_client,
    )
    return page(rows, size, client_message, lambda row: str(row["client_id"]))


async def rename(pool: asyncpg.Pool, client_id: str, name: str, version: int, changed_by: str) -> rule_pb2.Client:
    """The client at `version` renamed (an admin's change: any client)."""
    row = await pool.fetchrow(
        f"UPDATE clients SET name = $2, version = version + 1, updated_at = now(), updated_by = $4"
        f" WHERE client_id = $1 AND version = $3 RETURNING {COLUMNS}",
        client_id, name, version, changed_by,
    )
    if row is None:
        await explain_missed_write(pool, "clients", "client_id", client_id, version, None)
    return client_message(row)


async def delete(pool: asyncpg.Pool, client_id: str, version: int, changed_by: str) -> None:
    """The client (at `version`, unless 0) deleted with its rules and grants (the cascade),
    each of which the outbox records as deleted or revoked (an admin's change: any client)."""
    async with pool.acquire() as connection, connection.transaction():
        # Lock the client before reading its rules: an uncommitted rule insert holds a key-share
        # lock on the client row, so this waits for it, and the next statement (a new snapshot)
        # sees its rule. Afterwards no rule can be added, and the cascade removes exactly `rules`.
        await lock(connection, client_id, "UPDATE")
        rules = await connection.fetch("SELECT rule_id FROM rules WHERE client_id = $1 FOR UPDATE", client_id)
        # A grant given meanwhile waits for the client's lock too (its foreign key); one revoked
        # meanwhile is revoked twice on the log, which changes nothing.
        grants = await connection.fetch(f"SELECT {GRANT_COLUMNS} FROM source_grants WHERE client_id = $1",
                                        client_id)
        deleted = await connection.fetchval(
            "DELETE FROM clients WHERE client_id = $1 AND ($2 = 0 OR version = $2) RETURNING client_id",
            client_id, version,
        )
        if deleted is None:
            await explain_missed_write(connection, "clients", "client_id", client_id, version, None)
        for rule in rules:
            await outbox.add_change(connection, DELETE, str(rule["rule_id"]), client_id, None, changed_by)
        # Revoked in the log too: the cascade removed them from Postgres, and the snapshot
        # and the evaluators' indexes must forget them alike.
        for grant in grants:
            await outbox.add_grant_change(connection, REVOKE, grant_from_row(grant), changed_by)
