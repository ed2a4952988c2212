"""Silences in Postgres: created, listed and expired early, never deleted (the record of who
muted what, and why). The state each one shows is as of the `now` its caller gives."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from alerting.rule_service.errors import FailedPrecondition, QuotaExceeded
from alerting.rule_service.store import clients
from alerting.rule_service.store.rows import page, visible_row
from alerting.rules import silences
from alerting.v1 import silence_service_pb2 as api

COLUMNS = ("silence_id, client_id, severity, source, name, starts_at, ends_at, comment, created_by, created_at,"
           " expired_at, expired_by")
# Not yet ended nor expired at $2 (a silence is never expired ahead of the clock).
NOT_ENDED = "ends_at > $2 AND (expired_at IS NULL OR expired_at > $2)"
STATES = {silences.PENDING: api.SILENCE_STATE_PENDING, silences.ACTIVE: api.SILENCE_STATE_ACTIVE,
          silences.EXPIRED: api.SILENCE_STATE_EXPIRED}
LIST = f"""
SELECT {COLUMNS} FROM silences
WHERE ($1::uuid IS NULL OR client_id = $1) AND ($3 OR ({NOT_ENDED}))
  AND ($4::timestamptz IS NULL OR (created_at, silence_id) < ($4, $5::uuid))
ORDER BY created_at DESC, silence_id DESC LIMIT $6
"""


def silence_state(row: asyncpg.Record, now: datetime) -> str:
    return silences.state(row["starts_at"], row["ends_at"], row["expired_at"], now)


def silence_message(row: asyncpg.Record, now: datetime) -> api.Silence:
    message = api.Silence(
        silence_id=str(row["silence_id"]), client_id=str(row["client_id"]), severity=row["severity"],
        source=row["source"], name=row["name"], comment=row["comment"], created_by=row["created_by"],
        expired_by=row["expired_by"] or "", state=STATES[silence_state(row, now)])
    message.starts_at.FromDatetime(row["starts_at"])
    message.ends_at.FromDatetime(row["ends_at"])
    message.created_at.FromDatetime(row["created_at"])
    if row["expired_at"] is not None:
        message.expired_at.FromDatetime(row["expired_at"])
    return message


async def create(pool: asyncpg.Pool, client_id: str, matchers: tuple[str, str, str], starts_at: datetime,
                 ends_at: datetime, comment: str, created_by: str, now: datetime, max_per_client: int) -> api.Silence:
    """A new silence of the client, within its quota of silences not yet ended at `now`."""
    async with pool.acquire() as connection, connection.transaction():
        # Creations for one client take turns here, so that none goes past the quota.
        await clients.lock_existing(connection, client_id)
        count = await connection.fetchval(
            f"SELECT count(*) FROM silences WHERE client_id = $1 AND {NOT_ENDED}", client_id, now)
        if count >= max_per_client:
            raise QuotaExceeded(f"client_id: client {client_id} has {count} silences not yet ended, the most a"
                                f" client may have ({max_per_client}); expire one first")
        row = await connection.fetchrow(
            f"INSERT INTO silences (client_id, severity, source, name, starts_at, ends_at, comment, created_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}",
            client_id, *matchers, starts_at, ends_at, comment, created_by)
    return silence_message(row, now)


async def get(pool: asyncpg.Pool, silence_id: str, visible_client: str | None, now: datetime) -> api.Silence:
    return silence_message(await visible_row(pool, "silences", COLUMNS, "silence_id", silence_id, visible_client), now)


async def list_page(pool: asyncpg.Pool, client_id: str | None, include_expired: bool, now: datetime,
                    after: tuple[datetime, str] | None, size: int
                    ) -> tuple[list[api.Silence], tuple[datetime, str] | None]:
    """Silences newest first after `after` (only `client_id`'s, when set; only those not yet
    ended unless `include_expired`); the last one's (created_at, silence_id) when more follow."""
    rows = await pool.fetch(LIST, client_id, now, include_expired, after and after[0], after and after[1], size + 1)
    return page(rows, size, lambda row: silence_message(row, now),
                lambda row: (row["created_at"], str(row["silence_id"])))


async def expire(pool: asyncpg.Pool, silence_id: str, visible_client: str | None, expired_by: str, now: datetime
                 ) -> api.Silence:
    """The silence (only of `visible_client`, when set) ended at `now`, unless it has ended
    or was expired already."""
    row = await pool.fetchrow(
        f"UPDATE silences SET expired_at = $2, expired_by = $4 WHERE silence_id = $1 AND {NOT_ENDED}"
        f" AND ($3::uuid IS NULL OR client_id = $3::uuid) RETURNING {COLUMNS}",
        silence_id, now, visible_client, expired_by)
    if row is None:
        # NotFound when there is none
        current = await visible_row(pool, "silences", COLUMNS, "silence_id", silence_id, visible_client)
        raise FailedPrecondition(f"silence_id: {silence_id} is {silence_state(current, now)},"
                                 " not PENDING or ACTIVE")
    return silence_message(row, now)

