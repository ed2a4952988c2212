"""The gRPC ApiKeyService: create, list and revoke API keys, and say whose key a call carries.

Only an ADMIN key creates keys unless tenant self-service is on: a TENANT key that could
mint keys would let whoever stole it keep access after its revocation, through keys it made.
With self-service on, a key a TENANT key makes expires no later than that key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from alerting.common.validation import InvalidField, canonical_uuid
from alerting.rule_service import access, validation
from alerting.rule_service.auth import caller
from alerting.rule_service.errors import FailedPrecondition, NotFound, QuotaExceeded, grpc_errors
from alerting.v1 import api_key_service_pb2 as api
from alerting.v1 import api_key_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context

KEY_COLUMNS = "key_id, role, client_id, name, created_by, created_at, revoked_at, expires_at"
DEFAULT_MAX_KEYS_PER_CLIENT = 20
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


class ApiKeyService(api_key_service_pb2_grpc.ApiKeyServiceServicer):
    def __init__(self, pool: asyncpg.Pool, tenant_key_self_service: bool = False,
                 max_keys_per_client: int = DEFAULT_MAX_KEYS_PER_CLIENT) -> None:
        self.pool = pool
        self.tenant_key_self_service = tenant_key_self_service
        self.max_keys_per_client = max_keys_per_client

    @grpc_errors
    async def CreateApiKey(self, request: api.CreateApiKeyRequest, context: Context) -> api.CreateApiKeyResponse:
        who = caller()
        name = access.key_name(request.name)
        limit = None if who.is_admin else who.expires_at
        expires_at = access.expiry(request.expires_at.seconds, request.expires_at.nanos, datetime.now(UTC), limit) \
            if request.HasField("expires_at") else limit
        if request.role == api.ROLE_ADMIN:
            who.require_admin("creating an ADMIN key")
            if request.client_id:
                raise InvalidField("client_id", "an ADMIN key belongs to no client; leave it empty")
            role, client_id = access.ADMIN, None
        elif request.role == api.ROLE_TENANT:
            client_id = canonical_uuid(request.client_id, "client_id")
            if not who.may_see(client_id):
                raise NotFound(f"client_id: no client {client_id}")
            if not self.tenant_key_self_service:
                who.require_admin("creating a key")
            role = access.TENANT
        else:
            raise InvalidField("role", "ROLE_ADMIN or ROLE_TENANT")
        async with self.pool.acquire() as connection, connection.transaction():
            if client_id is not None:
                await self._check_key_quota(connection, client_id)
            while True:
                new = access.new_key()
                row = await connection.fetchrow(
                    f"INSERT INTO api_keys (key_id, secret_hash, role, client_id, name, created_by, expires_at)"
                    f" VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key_id) DO NOTHING RETURNING {KEY_COLUMNS}",
                    new.key_id, new.secret_hash, role, client_id, name, who.key_id, expires_at,
                )
                if row is not None:  # else a 1-in-2^60 clash of key ids: draw another
                    return api.CreateApiKeyResponse(api_key=key_message(row), key=new.key)

    async def _check_key_quota(self, connection: asyncpg.Connection, client_id: str) -> None:
        """NOT_FOUND without the client; RESOURCE_EXHAUSTED when it has as many valid keys as
        it may. Key creations for one client take turns on the client's row, so that none goes
        past the quota."""
        if await connection.fetchval(
                "SELECT 1 FROM clients WHERE client_id = $1 FOR NO KEY UPDATE", client_id) is None:
            raise NotFound(f"client_id: no client {client_id}")
        count = await connection.fetchval(
            f"SELECT count(*) FROM api_keys WHERE client_id = $1 AND {VALID}", client_id)
        if count >= self.max_keys_per_client:
            raise QuotaExceeded(f"client_id: client {client_id} has {count} valid keys, the most a client may have"
                                f" ({self.max_keys_per_client}); revoke one first")

    @grpc_errors
    async def ListApiKeys(self, request: api.ListApiKeysRequest, context: Context) -> api.ListApiKeysResponse:
        who = caller()
        client_id = canonical_uuid(request.client_id, "client_id") if request.client_id else who.visible_client()
        if client_id is not None and not who.may_see(client_id):
            raise NotFound(f"client_id: no client {client_id}")
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token, access.key_id)
        rows = await self.pool.fetch(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
            f" AND ($2::text IS NULL OR key_id > $2::text) AND ($3 OR ({VALID}))"
            " ORDER BY key_id LIMIT $4",
            client_id, after, request.include_revoked, size + 1,
        )
        page = rows[:size]
        token = validation.encode_page_token(page[-1]["key_id"]) if len(rows) > size else ""
        return api.ListApiKeysResponse(api_keys=[key_message(r) for r in page], next_page_token=token)

    @grpc_errors
    async def RevokeApiKey(self, request: api.RevokeApiKeyRequest, context: Context) -> api.ApiKey:
        who = caller()
        key_id = access.key_id(request.key_id)
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)"
                " FOR UPDATE", key_id, who.visible_client())
            if row is None:
                raise NotFound(f"key_id: no key {key_id}")
            if row["revoked_at"] is not None:
                return key_message(row)
            if row["role"] == access.ADMIN:
                # Every valid admin key, locked: two revocations cannot each leave the other's key last.
                admins = await connection.fetch(
                    f"SELECT key_id FROM api_keys WHERE role = 'ADMIN' AND {VALID} FOR UPDATE")
                if [admin["key_id"] for admin in admins] == [key_id]:
                    raise FailedPrecondition(
                        f"key_id: {key_id} is the last valid ADMIN key; create another before revoking it")
            row = await connection.fetchrow(
                f"UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 RETURNING {KEY_COLUMNS}", key_id)
        return key_message(row)

    @grpc_errors
    async def WhoAmI(self, request: api.WhoAmIRequest, context: Context) -> api.ApiKey:
        row = await self.pool.fetchrow(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1", caller().key_id)
        if row is None:  # deleted with its client since the key was checked
            raise NotFound("key_id: this key no longer exists")
        return key_message(row)
