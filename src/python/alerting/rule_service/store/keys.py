"""API keys in Postgres: the keys callers make, list and revoke, and the stored hash every
call's key is checked against."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from alerting.rule_service import access
from alerting.rule_service.errors import FailedPrecondition, NotFound, QuotaExceeded
from alerting.rule_service.store import clients
from alerting.rule_service.store.rows import page
from alerting.v1 import api_key_service_pb2 as api

COLUMNS = "key_id, role, client_id, name, created_by, created_at, revoked_at, expires_at"
# A key that works: neither revoked nor expired.
VALID = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
ROLES = {access.ADMIN: api.ROLE_ADMIN, access.TENANT: api.ROLE_TENANT}


def key_message(row: asyncpg.Record) -> api.ApiKey:
    key = api.ApiKey(key_id=row["key_id"], role=ROLES[row["role"]],
                     client_id="" if row["client_id"] is None else str(row["client_id"]),
                     name=row["name"], created_by=row["created_by"])
    key.created_at.FromDatetime(row["created_at"])
    if row["revoked_at"] is not None:
        key.revoked_at.FromDatetime(row["revoked_at"])
    if row["expires_at"] is not None:
        key.expires_at.FromDatetime(row["expires_at"])
    return key


async def create(pool: asyncpg.Pool, role: str, client_id: str | None, name: str, created_by: str,
                 expires_at: datetime | None, max_keys_per_client: int) -> tuple[api.ApiKey, str]:
    """A new key and the key itself (to be shown once); a TENANT key within its client's quota."""
    async with pool.acquire() as connection, connection.transaction():
        if client_id is not None:
            await _check_key_quota(connection, client_id, max_keys_per_client)
        while True:
            new = access.new_key()
            row = await connection.fetchrow(
                f"INSERT INTO api_keys (key_id, secret_hash, role, client_id, name, created_by, expires_at)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key_id) DO NOTHING RETURNING {COLUMNS}",
                new.key_id, new.secret_hash, role, client_id, name, created_by, expires_at,
            )
            if row is not None:  # else a 1-in-2^60 clash of key ids: draw another
                return key_message(row), new.key


async def _check_key_quota(connection: asyncpg.Connection, client_id: str, limit: int) -> None:
    """NOT_FOUND without the client; RESOURCE_EXHAUSTED when it has as many valid keys as
    it may. Key creations for one client take turns on the client's row, so that none goes
    past the quota."""
    await clients.lock_existing(connection, client_id)
    count = await connection.fetchval(f"SELECT count(*) FROM api_keys WHERE client_id = $1 AND {VALID}", client_id)
    if count >= limit:
        raise QuotaExceeded(f"client_id: client {client_id} has {count} valid keys, the most a client may have"
                            f" ({limit}); revoke one first")


async def list_page(pool: asyncpg.Pool, client_id: str | None, include_revoked: bool, after: str | None, size: int
                    ) -> tuple[list[api.ApiKey], str | None]:
    """Keys by key id after `after` (only `client_id`'s, when set; only valid ones unless
    `include_revoked`); the last key id when more follow."""
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM api_keys WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
        f" AND ($2::text IS NULL OR key_id > $2::text) AND ($3 OR ({VALID}))"
        " ORDER BY key_id LIMIT $4",
        client_id, after, include_revoked, size + 1,
    )
    return page(rows, size, key_message, lambda row: str(row["key_id"]))


async def revoke(pool: asyncpg.Pool, key_id: str, visible_client: str | None) -> api.ApiKey:
    """The key (only of `visible_client`, when set) revoked, unless it is the last valid
    ADMIN key; a revoked key as it is."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            f"SELECT {COLUMNS} FROM api_keys WHERE key_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)"
            " FOR UPDATE", key_id, visible_client)
        if row is None:
            raise NotFound(f"key_id: no key {key_id}")
        if row["revoked_at"] is not None:
            return key_message(row)
        if row["role"] == access.ADMIN:
            # Every valid admin key, locked: two revocations cannot each leave the other's key last.
            admins = await connection.fetch(f"SELECT key_id FROM api_keys WHERE role = 'ADMIN' AND {VALID} FOR UPDATE")
            if [admin["key_id"] for admin in admins] == [key_id]:
                raise FailedPrecondition(
                    f"key_id: {key_id} is the last valid ADMIN key; create another before revoking it")
        row = await connection.fetchrow(
            f"UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 RETURNING {COLUMNS}", key_id)
    return key_message(row)


async def get(pool: asyncpg.Pool, key_id: str) -> api.ApiKey:
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM api_keys WHERE key_id = $1", key_id)
    if row is None:  # deleted with its client since the key was checked
        raise NotFound("key_id: this key no longer exists")
    return key_message(row)


async def stored_key(pool: asyncpg.Pool, key_id: str) -> asyncpg.Record | None:
    """What a call's key is checked against: the key's secret_hash, role, client_id, whether
    it is revoked, and expires_at; None for an unknown key id."""
    return await pool.fetchrow(
        "SELECT secret_hash, role, client_id, revoked_at IS NOT NULL AS revoked, expires_at"
        " FROM api_keys WHERE key_id = $1", key_id)


async def add_bootstrap_key(pool: asyncpg.Pool, key_id: str, secret_hash: bytes) -> bool:
    """The admin key given at first start stored, unless its id is known already (a key
    revoked since stays revoked); whether it was stored now."""
    stored = await pool.fetchval(
        "INSERT INTO api_keys (key_id, secret_hash, role, name, created_by)"
        " VALUES ($1, $2, $3, 'bootstrap admin key', $4) ON CONFLICT (key_id) DO NOTHING RETURNING key_id",
        key_id, secret_hash, access.ADMIN, access.BOOTSTRAP,
    )
    return stored is not None
