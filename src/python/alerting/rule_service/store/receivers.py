"""Receivers in Postgres: created, listed, their secret rotated, deleted while no rule names
them. Secrets arrive sealed (rules/receivers.py) and never leave this module."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from alerting.rule_service.errors import AlreadyExists, FailedPrecondition, NotFound, QuotaExceeded
from alerting.rule_service.store import clients
from alerting.rule_service.store.rows import explain_missed_write, page, visible_row
from alerting.v1 import receiver_service_pb2 as api

COLUMNS = "receiver_id, client_id, name, kind, url, addresses, version, created_at, updated_at, updated_by"
KINDS = {"email": api.RECEIVER_KIND_EMAIL, "webhook": api.RECEIVER_KIND_WEBHOOK, "slack": api.RECEIVER_KIND_SLACK}
LIST = f"""
SELECT {COLUMNS} FROM receivers
WHERE ($1::uuid IS NULL OR client_id = $1) AND ($2::uuid IS NULL OR receiver_id > $2::uuid)
ORDER BY receiver_id LIMIT $3
"""


@dataclass(frozen=True)
class Endpoint:
    """Where a receiver delivers, as stored: a URL (shown; redacted when it is a credential,
    then kept in `url_sealed`) or addresses."""

    url: str | None
    addresses: list[str]
    url_sealed: bytes | None = None


def receiver_message(row: asyncpg.Record) -> api.Receiver:
    message = api.Receiver(receiver_id=str(row["receiver_id"]), client_id=str(row["client_id"]), name=row["name"],
                           kind=KINDS[row["kind"]], url=row["url"] or "", addresses=row["addresses"],
                           version=row["version"], updated_by=row["updated_by"])
    message.created_at.FromDatetime(row["created_at"])
    message.updated_at.FromDatetime(row["updated_at"])
    return message


async def create(pool: asyncpg.Pool, client_id: str, name: str, kind: str, endpoint: Endpoint, sealed: bytes | None,
                 updated_by: str, max_per_client: int) -> api.Receiver:
    """A new receiver of the client, within its quota."""
    async with pool.acquire() as connection, connection.transaction():
        await clients.lock_existing(connection, client_id)
        count = await connection.fetchval("SELECT count(*) FROM receivers WHERE client_id = $1", client_id)
        if count >= max_per_client:
            raise QuotaExceeded(f"client_id: client {client_id} has {count} receivers, the most a client may have"
                                f" ({max_per_client}); delete one first")
        try:
            row = await connection.fetchrow(
                f"INSERT INTO receivers (client_id, name, kind, url, addresses, url_sealed, secret_sealed, updated_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}", client_id, name, kind, endpoint.url,
                endpoint.addresses, endpoint.url_sealed, sealed, updated_by)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"name: client {client_id} has a receiver named {name!r}") from None
    return receiver_message(row)


async def get(pool: asyncpg.Pool, receiver_id: str, visible_client: str | None) -> api.Receiver:
    return receiver_message(await _row(pool, receiver_id, visible_client))


async def list_page(pool: asyncpg.Pool, client_id: str | None, after: str | None, size: int
                    ) -> tuple[list[api.Receiver], str | None]:
    """Receivers by id after `after` (only `client_id`'s, when set); the last one's id when
    more follow."""
    rows = await pool.fetch(LIST, client_id, after, size + 1)
    return page(rows, size, receiver_message, lambda row: str(row["receiver_id"]))


async def rotate(pool: asyncpg.Pool, receiver_id: str, visible_client: str | None, sealed: bytes, updated_by: str
                 ) -> api.Receiver:
    """The webhook's new sealed secret; FailedPrecondition for a receiver that signs nothing."""
    row = await pool.fetchrow(
        f"UPDATE receivers SET secret_sealed = $3, version = version + 1, updated_at = now(), updated_by = $4"
        f" WHERE receiver_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid) AND kind = 'webhook'"
        f" RETURNING {COLUMNS}", receiver_id, visible_client, sealed, updated_by)
    if row is None:
        current = await _row(pool, receiver_id, visible_client)  # NotFound when there is none
        raise FailedPrecondition(f"receiver_id: {receiver_id} has no secret: only webhooks sign their requests"
                                 f" (it is of kind {current['kind']})")
    return receiver_message(row)


async def update(pool: asyncpg.Pool, receiver_id: str, visible_client: str | None, endpoint: Endpoint,
                 expected_version: int, updated_by: str) -> api.Receiver:
    """The receiver's new URL or addresses, if it is still at `expected_version`."""
    row = await pool.fetchrow(
        f"UPDATE receivers SET url = $3, addresses = $4, url_sealed = $5, version = version + 1, updated_at = now(),"
        f" updated_by = $7 WHERE receiver_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid) AND version = $6"
        f" RETURNING {COLUMNS}", receiver_id, visible_client, endpoint.url, endpoint.addresses, endpoint.url_sealed,
        expected_version, updated_by)
    if row is None:
        await explain_missed_write(pool, "receivers", "receiver_id", receiver_id, expected_version, visible_client)
    return receiver_message(row)


async def delete(pool: asyncpg.Pool, receiver_id: str, visible_client: str | None) -> None:
    """Deletes the receiver unless a rule names it (the rules are named)."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "SELECT client_id FROM receivers WHERE receiver_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)"
            " FOR UPDATE", receiver_id, visible_client)
        if row is None:
            raise NotFound(f"receiver_id: no receiver {receiver_id}")
        naming = await connection.fetch(
            "SELECT rule_id FROM rules WHERE client_id = $1 AND $2::uuid = ANY(receiver_ids) ORDER BY rule_id"
            " LIMIT 11 FOR SHARE", row["client_id"], receiver_id)
        if naming:
            listed = ", ".join(str(rule["rule_id"]) for rule in naming[:10]) + (" and more" if len(naming) > 10 else "")
            raise FailedPrecondition(f"receiver_id: rules name {receiver_id}: {listed}; change them first")
        await connection.execute("DELETE FROM receivers WHERE receiver_id = $1", receiver_id)


async def missing_of_client(connection: asyncpg.Connection, client_id: str, receiver_ids: list[str]) -> list[str]:
    """Which of these receivers the client does not have (locked against deletion while a
    rule is written to name them)."""
    if not receiver_ids:
        return []
    found = {str(row["receiver_id"]) for row in await connection.fetch(
        "SELECT receiver_id FROM receivers WHERE client_id = $1 AND receiver_id = ANY($2::uuid[]) FOR SHARE",
        client_id, receiver_ids)}
    return [receiver_id for receiver_id in receiver_ids if receiver_id not in found]


async def _row(pool: asyncpg.Pool, receiver_id: str, visible_client: str | None) -> asyncpg.Record:
    return await visible_row(pool, "receivers", COLUMNS, "receiver_id", receiver_id, visible_client)
