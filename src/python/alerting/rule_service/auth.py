"""Authentication of every call to the rule-service's APIs, and its rate limit.

A server interceptor reads `authorization: Bearer <key>`, checks the key against
`api_keys` (through a cache whose entries live `cache_seconds`, which bounds how long a
revoked key keeps working on any instance), takes a token from the tenant's rate-limit
bucket (admin keys, the operators', are not limited) and runs the handler with the caller
in `CALLER`. Health checking and reflection stay open, for probes and tools.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import grpc.aio

from alerting.common.validation import canonical_uuid
from alerting.rule_service.access import (
    ADMIN,
    BOOTSTRAP,
    Caller,
    MalformedKey,
    bearer_key,
    parse_key,
    secret_hash,
    secret_matches,
)
from alerting.rule_service.errors import NotFound
from alerting.rule_service.quotas import RateLimiter

log = logging.getLogger(__name__)
CALLER: ContextVar[Caller] = ContextVar("caller")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")
_UNKNOWN = "unknown or revoked API key"  # one answer for both: no oracle of which keys exist


class Unauthenticated(Exception):
    pass


def caller() -> Caller:
    """The caller of the RPC being handled (set by AuthInterceptor)."""
    return CALLER.get()


def visible_client_id(value: str) -> str:
    """A client id from a request; NOT_FOUND unless the caller may see that client."""
    client_id = canonical_uuid(value, "client_id")
    if not caller().may_see(client_id):
        raise NotFound(f"client_id: no client {client_id}")
    return client_id


@dataclass(frozen=True)
class StoredKey:
    secret_hash: bytes
    role: str
    client_id: str | None
    revoked: bool


class KeyStore:
    """Keys by id from Postgres, each answer (a missing key too) cached for `cache_seconds`."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = 10_000) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, StoredKey | None]] = OrderedDict()

    async def lookup(self, key_id: str) -> StoredKey | None:
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        row = await self.pool.fetchrow(
            "SELECT secret_hash, role, client_id, revoked_at IS NOT NULL AS revoked FROM api_keys WHERE key_id = $1",
            key_id,
        )
        stored = None if row is None else StoredKey(
            bytes(row["secret_hash"]), row["role"], None if row["client_id"] is None else str(row["client_id"]),
            row["revoked"])
        self._cache[key_id] = (now, stored)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return stored

    async def authenticate(self, key: str) -> Caller:
        key_id, secret = parse_key(key)
        stored = await self.lookup(key_id)
        if stored is None or stored.revoked or not secret_matches(stored.secret_hash, secret):
            raise Unauthenticated(_UNKNOWN)
        return Caller(key_id, stored.role, stored.client_id)


async def bootstrap_admin_key(pool: asyncpg.Pool, key: str) -> bool:
    """Store the admin key given at first start, unless its id is known already (a key revoked
    since stays revoked). True when it was stored now."""
    key_id, secret = parse_key(key)
    stored = await pool.fetchval(
        "INSERT INTO api_keys (key_id, secret_hash, role, name, created_by)"
        " VALUES ($1, $2, $3, 'bootstrap admin key', $4) ON CONFLICT (key_id) DO NOTHING RETURNING key_id",
        key_id, secret_hash(secret), ADMIN, BOOTSTRAP,
    )
    return stored is not None


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyStore, limiter: RateLimiter) -> None:
        self.keys = keys
        self.limiter = limiter

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        if handler.request_streaming or handler.response_streaming:
            raise TypeError(f"{method}: only unary RPCs are authenticated here")
        authorization = dict(handler_call_details.invocation_metadata or ()).get("authorization")
        try:
            who = await self.keys.authenticate(
                bearer_key(authorization if isinstance(authorization, str) else None))
        except (MalformedKey, Unauthenticated) as error:
            return _answering(handler, grpc.StatusCode.UNAUTHENTICATED, str(error))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            log.warning("cannot check an API key: %s", error)
            return _answering(handler, grpc.StatusCode.UNAVAILABLE, "cannot check the API key now; retry")
        wait = 0.0 if who.is_admin else self.limiter.acquire(f"client:{who.client_id}")
        if wait > 0:
            return _answering(handler, grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"rate limit of {self.limiter.rate:g} requests/s per client exceeded;"
                              f" retry in {max(wait, 0.001):.3f} s")
        return as_caller(handler, who)


def _answering(handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, details: str
               ) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, details)

    return _unary(handler, refuse)


def as_caller(handler: grpc.RpcMethodHandler[Any, Any], who: Caller) -> grpc.RpcMethodHandler[Any, Any]:
    behavior: Callable[..., Awaitable[Any]] | None = handler.unary_unary  # an aio handler: a coroutine function
    assert behavior is not None

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        token = CALLER.set(who)
        try:
            return await behavior(request, context)
        finally:
            CALLER.reset(token)

    return _unary(handler, call)


def _unary(handler: grpc.RpcMethodHandler[Any, Any], behavior: Callable[..., Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary handler like `handler` (the same (de)serializers) that runs `behavior`."""
    return grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer)
