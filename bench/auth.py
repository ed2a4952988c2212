"""What authenticating a call costs: sequential unary calls to the rule-service's gRPC server
with an API key (its check cached, and not cached: one Postgres lookup per call), over
plaintext and over TLS, each beside a baseline server of the same transport that checks no
key, in one run; and the key check timed alone.

    deploy/local-stack up && ./pants run bench/auth.py                  (about 2.5 minutes)
    deploy/local-stack up && ./pants run bench/auth.py -- --smoke       (seconds: that it runs)
    PYTHONPATH=src/python:bench:/tmp/gen .venv/bin/python bench/auth.py   (the same, from the dev venv)
Every server is a real grpc.aio server on 127.0.0.1 in this process, serving the real
servicers over one freshly migrated database (dropped afterwards), logged in as the
rule-service's main.py logs in. The authenticating servers are built by start_server; the
baselines the same way, but with an interceptor that makes every call an admin's in place
of AuthInterceptor. Every client presents the same admin key, so the servers differ only
in checking it. The calls run in rounds, each variant's block in every round, in a
rotating order; a variant's cost is its difference from its baseline's block of the
same round.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import grpc.aio
from pydantic import SecretStr
from workloads import full_or_smoke

from alerting.common.db import DatabaseRole, create_pool, owner_url
from alerting.common.grpc_client import aio_channel
from alerting.rule_service.access import ADMIN, Caller, bearer_key, new_key, parse_key
from alerting.rule_service.auth import KeyStore, as_caller, bootstrap_admin_key
from alerting.rule_service.grpc_metrics import ServerMetricsInterceptor
from alerting.rule_service.keys import ApiKeyService
from alerting.rule_service.server import listen, start_server
from alerting.rule_service.servicer import RuleService
from alerting.testsupport import stack
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.tls import make_certificates
from alerting.v1 import api_key_service_pb2, api_key_service_pb2_grpc, rule_service_pb2, rule_service_pb2_grpc


@dataclass(frozen=True)
class Sizes:
    warm_up: int  # calls per variant and method, before the measured ones
    # Many short rounds rather than a few long ones: in each round every variant's block of
    # calls runs within seconds of its baseline's, so the differences are taken between
    # neighbours, and the machine's slower stretches fall on both.
    rounds: int
    calls: int  # per round, variant and method
    checks: dict[float, int]  # key checks timed alone, by cache_seconds
    check_repetitions: int


FULL = Sizes(warm_up=500, rounds=25, calls=300, checks={2.0: 20_000, 0.0: 1_000}, check_repetitions=5)
SMOKE = Sizes(warm_up=5, rounds=2, calls=5, checks={2.0: 20, 0.0: 5}, check_repetitions=1)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Variant:
    name: str
    tls: bool
    authenticated: bool
    cache_seconds: float = 0.0


VARIANTS = (
    Variant("plaintext, no authentication", tls=False, authenticated=False),
    Variant("plaintext + key, cached 2 s", tls=False, authenticated=True, cache_seconds=2.0),
    Variant("plaintext + key, no cache", tls=False, authenticated=True, cache_seconds=0.0),
    Variant("TLS, no authentication", tls=True, authenticated=False),
    Variant("TLS + key, cached 2 s", tls=True, authenticated=True, cache_seconds=2.0),
)


class AdminCaller(grpc.aio.ServerInterceptor):
    """The baselines' stand-in for AuthInterceptor: every call runs as `who`, unchecked. It
    wraps the handler with AuthInterceptor's own as_caller, so that the wrapping costs the
    same and the check is all that differs."""

    def __init__(self, who: Caller) -> None:
        self.who = who

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        return None if handler is None else as_caller(handler, self.who)


async def start_baseline(settings: StackSettings, pool: asyncpg.Pool, who: Caller) -> tuple[grpc.aio.Server, int]:
    """A server as start_server builds it (the metrics interceptor, the request size limit, the
    transport), serving the two services measured here, with AdminCaller for AuthInterceptor."""
    server = grpc.aio.server(
        interceptors=[ServerMetricsInterceptor(), AdminCaller(who)],
        options=[("grpc.max_receive_message_length", settings.max_request_bytes)],
    )
    rule_service_pb2_grpc.add_RuleServiceServicer_to_server(
        RuleService(pool, lambda: None, settings.max_rules_per_client), server)
    api_key_service_pb2_grpc.add_ApiKeyServiceServicer_to_server(ApiKeyService(pool), server)
    port = listen(server, settings)
    await server.start()
    return server, port


@asynccontextmanager
async def serving(variant: Variant, settings: StackSettings, pool: asyncpg.Pool,
                  notification_pool: asyncpg.Pool, who: Caller) -> AsyncIterator[grpc.aio.Channel]:
    """The variant's server, and a client channel to it presenting the admin key."""
    settings = settings.model_copy(update={"rule_service_tls": variant.tls,
                                           "api_key_cache_seconds": variant.cache_seconds})
    if variant.authenticated:
        # No outbox relay runs: these calls change no rule, so there is nothing to wake.
        server, port = await start_server(settings, pool, lambda: None, notification_pool)
    else:
        server, port = await start_baseline(settings, pool, who)
    try:
        address = f"127.0.0.1:{port}"
        if variant.authenticated and not await refuses_without_key(settings, address):
            raise RuntimeError(f"{variant.name}: a call without a key was not refused")
        async with aio_channel(settings, address) as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
            yield channel
    finally:
        await server.stop(None)


async def refuses_without_key(settings: StackSettings, address: str) -> bool:
    """Whether the server at `address` answers UNAUTHENTICATED to a call without a key: that
    it really checks keys."""
    async with aio_channel(settings, address, api_key="") as channel:
        try:
            await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).WhoAmI(api_key_service_pb2.WhoAmIRequest())
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def methods(channel: grpc.aio.Channel, client_id: str) -> dict[str, Callable[[], Awaitable[object]]]:
    """The calls measured: GetClient of an existing client (one SELECT by primary key), and
    WhoAmI (one SELECT of the caller's key). Every RPC that succeeds reads Postgres."""
    rules = rule_service_pb2_grpc.RuleServiceStub(channel)
    keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
    get_client = rule_service_pb2.GetClientRequest(client_id=client_id)
    who_am_i = api_key_service_pb2.WhoAmIRequest()
    return {"GetClient": lambda: rules.GetClient(get_client), "WhoAmI": lambda: keys.WhoAmI(who_am_i)}


async def per_call_micros(call: Callable[[], Awaitable[object]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) / count * 1e6


async def check_micros(keys: KeyStore, key: str, count: int) -> float:
    """The key check alone, as AuthInterceptor makes it for every call: the key taken from its
    metadata value, and authenticated."""
    authorization = f"Bearer {key}"
    started = time.perf_counter()
    for _ in range(count):
        await keys.authenticate(bearer_key(authorization))
    return (time.perf_counter() - started) / count * 1e6


def baseline_of(variant: Variant) -> Variant:
    return next(v for v in VARIANTS if v.tls == variant.tls and not v.authenticated)


def report(sizes: Sizes, samples: dict[tuple[str, str], list[float]], method_names: list[str],
           checks: dict[float, float]) -> None:
    """Per call and variant: the median of the rounds' µs/call, and the medians over rounds of
    its ratio to and difference from its baseline's block of the same round (with the
    difference's quartiles, which show how much of it the noise could be)."""
    print(f"Sequential unary calls, one client, server and client in one process: {sizes.rounds} rounds × "
          f"{sizes.calls} calls per variant and call. µs/call: the median of the rounds; × baseline and added µs: "
          "medians over the rounds of the comparison with the baseline's block of the same round.")
    print()
    print("| call | variant | µs/call | calls/s | × baseline | added µs/call | quartiles of added µs |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for method in method_names:
        for variant in VARIANTS:
            rounds = samples[variant.name, method]
            micros = statistics.median(rounds)
            cells = f"| {method} | {variant.name} | {micros:,.0f} | {1e6 / micros:,.0f} |"
            baseline = baseline_of(variant)
            if variant is baseline:
                print(f"{cells} baseline | – | – |")
                continue
            base = samples[baseline.name, method]
            ratio = statistics.median(v / b for v, b in zip(rounds, base, strict=True))
            added = [v - b for v, b in zip(rounds, base, strict=True)]
            low, _, high = statistics.quantiles(added, n=4)
            print(f"{cells} {ratio:.2f}× | {statistics.median(added):+,.0f} | {low:+,.0f} … {high:+,.0f} |")
    print()
    print(f"The key check alone (bearer_key, KeyStore.authenticate), median of {sizes.check_repetitions}:")
    print()
    print("| check | µs/check |")
    print("|---|---:|")
    for cache_seconds, micros in checks.items():
        what = f"cached {cache_seconds:g} s" if cache_seconds else "no cache: one SELECT from api_keys"
        print(f"| {what} | {micros:,.1f} |")


async def main(sizes: Sizes) -> None:
    run_started = time.perf_counter()
    base = StackSettings()
    base = base.model_copy(update={"database_url": owner_url(base)})  # creates and drops databases
    tag = stack.unique_name("auth")
    certificates = make_certificates()
    try:
        async with AsyncExitStack() as resources:
            database_url = await stack.create_database(base.database_url, tag)
            resources.push_async_callback(stack.drop_database, base.database_url, tag)
            stack.migrate_up(database_url)
            admin_key = new_key().key
            settings = base.model_copy(update={
                "database_url": database_url, "grpc_port": 0, "tls_cert_file": certificates.cert,
                "tls_key_file": certificates.key, "tls_ca_file": certificates.ca, "api_key": SecretStr(admin_key)})
            # As rule_service/main.py connects: the control plane's role, and the notification admin's.
            pool = await create_pool(settings, DatabaseRole.CONTROL_PLANE)
            resources.push_async_callback(pool.close)
            notification_pool = await create_pool(settings, DatabaseRole.NOTIFICATION_ADMIN)
            resources.push_async_callback(notification_pool.close)
            await bootstrap_admin_key(pool, admin_key)
            who = Caller(parse_key(admin_key)[0], ADMIN, None)

            calls: dict[str, dict[str, Callable[[], Awaitable[object]]]] = {}
            client_id = ""
            for variant in VARIANTS:
                channel = await resources.enter_async_context(
                    serving(variant, settings, pool, notification_pool, who))
                if not client_id:
                    client = await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
                        rule_service_pb2.CreateClientRequest(name="auth-bench"))
                    client_id = client.client_id
                calls[variant.name] = methods(channel, client_id)

            method_names = list(calls[VARIANTS[0].name])
            log(f"warm-up: {sizes.warm_up} calls per variant and call")
            for variant_calls in calls.values():
                for call in variant_calls.values():
                    await per_call_micros(call, sizes.warm_up)
            log(f"{sizes.rounds} rounds of {sizes.calls} sequential calls per variant and call, the variants in"
                " rotating order")
            samples: dict[tuple[str, str], list[float]] = {
                (variant.name, method): [] for variant in VARIANTS for method in method_names}
            for number in range(sizes.rounds):
                shift = number % len(VARIANTS)
                for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                    for method, call in calls[variant.name].items():
                        samples[variant.name, method].append(await per_call_micros(call, sizes.calls))

            checks = {}
            for cache_seconds, count in sizes.checks.items():
                keys = KeyStore(pool, cache_seconds)
                checks[cache_seconds] = statistics.median(
                    [await check_micros(keys, admin_key, count) for _ in range(sizes.check_repetitions)])
    finally:
        shutil.rmtree(Path(certificates.ca).parent, ignore_errors=True)
    log(f"run time {time.perf_counter() - run_started:.0f} s, cleanup included")
    report(sizes, samples, method_names, checks)


if __name__ == "__main__":
    asyncio.run(main(full_or_smoke(__doc__, FULL, SMOKE)))
