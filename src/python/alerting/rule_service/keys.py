"""The gRPC ApiKeyService: create, list and revoke API keys, and say whose key a call carries.

Only an ADMIN key creates keys unless tenant self-service is on: a TENANT key that could
mint keys would let whoever stole it keep access after its revocation, through keys it made.
With self-service on, a key a TENANT key makes expires no later than that key. The SQL is
store/keys.py's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from alerting.common.settings import DEFAULT_MAX_KEYS_PER_CLIENT
from alerting.common.validation import InvalidField, canonical_uuid
from alerting.rule_service import access, validation
from alerting.rule_service.auth import caller
from alerting.rule_service.errors import NotFound, grpc_errors
from alerting.rule_service.store import keys as key_store
from alerting.v1 import api_key_service_pb2 as api
from alerting.v1 import api_key_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context


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
        api_key, key = await key_store.create(self.pool, role, client_id, name, who.key_id, expires_at,
                                              self.max_keys_per_client)
        return api.CreateApiKeyResponse(api_key=api_key, key=key)

    @grpc_errors
    async def ListApiKeys(self, request: api.ListApiKeysRequest, context: Context) -> api.ListApiKeysResponse:
        who = caller()
        client_id = canonical_uuid(request.client_id, "client_id") if request.client_id else who.visible_client()
        if client_id is not None and not who.may_see(client_id):
            raise NotFound(f"client_id: no client {client_id}")
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token, access.key_id)
        api_keys, last = await key_store.list_page(self.pool, client_id, request.include_revoked, after, size)
        return api.ListApiKeysResponse(api_keys=api_keys,
                                       next_page_token=validation.encode_page_token(last) if last else "")

    @grpc_errors
    async def RevokeApiKey(self, request: api.RevokeApiKeyRequest, context: Context) -> api.ApiKey:
        return await key_store.revoke(self.pool, access.key_id(request.key_id), caller().visible_client())

    @grpc_errors
    async def WhoAmI(self, request: api.WhoAmIRequest, context: Context) -> api.ApiKey:
        return await key_store.get(self.pool, caller().key_id)
