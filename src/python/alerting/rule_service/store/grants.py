"""Source grants in Postgres, each given or revoked recorded in the outbox in its transaction."""

from __future__ import annotations

import asyncpg

from alerting.rule_service import outbox
from alerting.rule_service.errors import NotFound
from alerting.rule_service.store.rows import page
from alerting.rules.changelog import GRANT, REVOKE
from alerting.rules.records import GRANT_COLUMNS, grant_from_row
from alerting.v1 import rule_pb2


async def grant(pool: asyncpg.Pool, client_id: str, source: str, prefix: bool, granted_by: str
                ) -> tuple[rule_pb2.SourceGrant, bool]:
    """The client's grant of the source (or prefix), and whether it is new: granting a
    source already granted changes nothing."""
    async with pool.acquire() as connection, connection.transaction():
        while True:
            row = await connection.fetchrow(
                f"INSERT INTO source_grants (client_id, source, prefix, created_by) VALUES ($1, $2, $3, $4)"
                f" ON CONFLICT DO NOTHING RETURNING {GRANT_COLUMNS}", client_id, source, prefix, granted_by)
            if row is not None:
                break
            existing = await connection.fetchrow(
                f"SELECT {GRANT_COLUMNS} FROM source_grants WHERE client_id = $1 AND source = $2 AND prefix = $3",
                client_id, source, prefix)
            if existing is not None:  # else revoked meanwhile: grant it again
                return grant_from_row(existing), False
        granted = grant_from_row(row)
        await outbox.add_grant_change(connection, GRANT, granted, granted_by)
    return granted, True


async def list_page(pool: asyncpg.Pool, client_id: str | None, after: tuple[str, str, bool] | None, size: int
                    ) -> tuple[list[rule_pb2.SourceGrant], tuple[str, str, bool] | None]:
    """Grants by (client_id, source, prefix) after `after` (only `client_id`'s, when set);
    the last one's (client_id, source, prefix) when more follow."""
    after_client, after_source, after_prefix = after or (None, None, None)
    rows = await pool.fetch(
        f"SELECT {GRANT_COLUMNS} FROM source_grants WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
        " AND ($2::uuid IS NULL OR (client_id, source, prefix) > ($2::uuid, $3::text, $4::boolean))"
        " ORDER BY client_id, source, prefix LIMIT $5",
        client_id, after_client, after_source, after_prefix, size + 1,
    )
    return page(rows, size, grant_from_row, lambda row: (str(row["client_id"]), row["source"], row["prefix"]))


async def revoke(pool: asyncpg.Pool, client_id: str, source: str, prefix: bool, revoked_by: str) -> None:
    """The client's grant of the source (or prefix) revoked; NotFound when it has none."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            f"DELETE FROM source_grants WHERE client_id = $1 AND source = $2 AND prefix = $3"
            f" RETURNING {GRANT_COLUMNS}", client_id, source, prefix)
        if row is None:
            kind = "prefix" if prefix else "source"
            raise NotFound(f"source: client {client_id} has no grant of the {kind} {source!r}")
        await outbox.add_grant_change(connection, REVOKE, grant_from_row(row), revoked_by)
