"""Authentication of every call to the rule-service's APIs, and its rate limit.

A server interceptor reads `authorization: Bearer <key>` (exactly one such value), checks
the key against `api_keys` through a cache whose entries live `cache_seconds` (which bounds
how long a revoked key keeps working on any instance), refuses an expired key, takes a
token from the tenant's rate-limit bucket (admin keys, the operators', are not limited) and
runs the handler with the caller in `CALLER`. Each failed authentication takes a token from
its peer's bucket; a peer with none left is refused before its key is looked up, so that
guessing keys costs Postgres nothing. Health checking and reflection stay open, for probes
and tools.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
import grpc
import grpc.aio
from prometheus_client import Counter

from alerting.common.validation import canonical_uuid
from alerting.rule_service.access import (
    Caller,
    MalformedKey,
    parse_key,
    presented_key,
    secret_hash,
    secret_matches,
)
from alerting.rule_service.errors import NotFound
from alerting.rule_service.limits import peer_address
from alerting.rule_service.quotas import RateLimiter
from alerting.rule_service.store import keys as key_store

log = logging.getLogger(__name__)
CALLER: ContextVar[Caller] = ContextVar("caller")
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")
_UNKNOWN = "unknown or revoked API key"  # one answer for both: no oracle of which keys exist
KEY_LOOKUPS = Counter(
    "alerting_api_key_lookups_total",
    "API key checks that asked Postgres, by whether the key id was found: many `unknown` is someone guessing.",
    ["outcome"],
)
T = TypeVar("T")


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
    expires_at: datetime | None


class RecentAnswers(Generic[T]):
    """Answers by key id, each for `ttl` seconds, at most `max_entries` of them (the least
    recently used go first)."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def get(self, key_id: str) -> T | None:
        entry = self._entries.get(key_id)
        if entry is None or self.clock() - entry[0] >= self.ttl:
            return None
        self._entries.move_to_end(key_id)
        return entry[1]

    def put(self, key_id: str, answer: T) -> None:
        self._entries[key_id] = (self.clock(), answer)
        self._entries.move_to_end(key_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)


class KeyStore:
    """Keys by id from Postgres, each answer cached for `cache_seconds`: keys that exist in
    one cache, ids that do not in another, bounded on its own, so that a flood of made-up
    ids cannot push real keys out."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000, max_unknown: int = 10_000) -> None:
        self.pool = pool
        self._known: RecentAnswers[StoredKey] = RecentAnswers(cache_seconds, max_keys, clock)
        self._unknown: RecentAnswers[bool] = RecentAnswers(cache_seconds, max_unknown, clock)

    async def lookup(self, key_id: str) -> StoredKey | None:
        known = self._known.get(key_id)
        if known is not None or self._unknown.get(key_id):
            return known
        row = await key_store.stored_key(self.pool, key_id)
        KEY_LOOKUPS.labels("unknown" if row is None else "found").inc()
        if row is None:
            self._known.forget(key_id)
            self._unknown.put(key_id, True)
            return None
        stored = StoredKey(bytes(row["secret_hash"]), row["role"],
                           None if row["client_id"] is None else str(row["client_id"]), row["revoked"],
                           row["expires_at"])
        self._unknown.forget(key_id)
        self._known.put(key_id, stored)
        return stored

    async def authenticate(self, key: str) -> Caller:
        key_id, secret = parse_key(key)
        stored = await self.lookup(key_id)
        if stored is None or stored.revoked or not secret_matches(stored.secret_hash, secret):
            raise Unauthenticated(_UNKNOWN)
        if stored.expires_at is not None and stored.expires_at <= datetime.now(UTC):
            # Said only to whoever holds the secret: it tells nothing about which keys exist.
            raise Unauthenticated(f"API key {key_id} expired at {stored.expires_at.isoformat()}")
        return Caller(key_id, stored.role, stored.client_id, stored.expires_at)


async def bootstrap_admin_key(pool: asyncpg.Pool, key: str) -> bool:
    """Store the admin key given at first start, unless its id is known already (a key revoked
    since stays revoked). True when it was stored now."""
    key_id, secret = parse_key(key)
    return await key_store.add_bootstrap_key(pool, key_id, secret_hash(secret))


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyStore, limiter: RateLimiter, failures: RateLimiter) -> None:
        self.keys = keys
        self.limiter = limiter  # requests per tenant client
        self.failures = failures  # failed authentications per peer address

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        if handler.request_streaming or handler.response_streaming:
            raise TypeError(f"{method}: only unary RPCs are authenticated here")
        return as_caller(handler, self.admit)

    async def admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        """The caller, or the call aborted: UNAUTHENTICATED, UNAVAILABLE, or RESOURCE_EXHAUSTED
        for a peer with too many failed authentications or a tenant past its rate limit."""
        peer = peer_address(context.peer())
        wait = self.failures.wait(peer)
        if wait > 0:
            # RESOURCE_EXHAUSTED, not UNAUTHENTICATED: the key was not even looked at, and a
            # client with a good key behind the same address should wait, not replace its key.
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many failed authentications from {peer}; retry in {max(wait, 0.001):.3f} s")
        try:
            who = await self.keys.authenticate(presented_key(context.invocation_metadata() or ()))
        except (MalformedKey, Unauthenticated) as error:
            self.failures.acquire(peer)
            if self.failures.wait(peer) > 0:
                log.warning("refusing %s for a while: too many failed authentications", peer)
            code, details = grpc.StatusCode.UNAUTHENTICATED, str(error)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
            log.warning("cannot check an API key: %s", error)
            code, details = grpc.StatusCode.UNAVAILABLE, "cannot check the API key now; retry"
        else:
            wait = 0.0 if who.is_admin else self.limiter.acquire(f"client:{who.client_id}")
            if wait <= 0:
                return who
            code, details = (grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"rate limit of {self.limiter.rate:g} requests/s per client exceeded;"
                             f" retry in {max(wait, 0.001):.3f} s")
        await context.abort(code, details)  # outside the except blocks: no exception chained to it


def as_caller(handler: grpc.RpcMethodHandler[Any, Any],
              who: Caller | Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[Caller]],
              ) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary handler like `handler` (the same (de)serializers) that runs it with CALLER set to
    `who`: a caller, or a coroutine function that finds it in the call's context (and aborts
    the call when there is none)."""
    behavior: Callable[..., Awaitable[Any]] | None = handler.unary_unary  # an aio handler: a coroutine function
    assert behavior is not None

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        token = CALLER.set(who if isinstance(who, Caller) else await who(context))
        try:
            return await behavior(request, context)
        finally:
            CALLER.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
