"""The rule-service's gRPC server (RuleService, ApiKeyService, NotificationService,
DeadLetterService, NotificationPolicyService, SilenceService, ReceiverService, health checking, reflection,
server metrics), over TLS unless told
otherwise, every API call authenticated, and the outbox relay beside it, served until the
service is asked to stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import grpc
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from alerting.common.retry import retry_until_done
from alerting.common.service import Lifecycle
from alerting.common.settings import RuleServiceSettings, secret_value
from alerting.rule_service.access import MalformedKey, parse_key
from alerting.rule_service.auth import AuthInterceptor, KeyStore, bootstrap_admin_key
from alerting.rule_service.dead_letters import DeadLetterService
from alerting.rule_service.errors import UnexpectedErrors
from alerting.rule_service.grpc_metrics import ServerMetricsInterceptor
from alerting.rule_service.keys import ApiKeyService
from alerting.rule_service.notifications import NotificationService
from alerting.rule_service.outbox import OutboxRelay
from alerting.rule_service.policies import NotificationPolicyService
from alerting.rule_service.quotas import RateLimiter
from alerting.rule_service.receivers import ReceiverService
from alerting.rule_service.servicer import RuleService
from alerting.rule_service.silences import SilenceService
from alerting.rules.policies import default_policy
from alerting.rules.receivers import OutboundPolicy, Sealer
from alerting.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    dead_letter_service_pb2,
    dead_letter_service_pb2_grpc,
    notification_policy_service_pb2,
    notification_policy_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    receiver_service_pb2,
    receiver_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
    silence_service_pb2,
    silence_service_pb2_grpc,
)

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    rule_service_pb2.DESCRIPTOR.services_by_name["RuleService"].full_name,
    api_key_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"].full_name,
    notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    dead_letter_service_pb2.DESCRIPTOR.services_by_name["DeadLetterService"].full_name,
    notification_policy_service_pb2.DESCRIPTOR.services_by_name["NotificationPolicyService"].full_name,
    silence_service_pb2.DESCRIPTOR.services_by_name["SilenceService"].full_name,
    receiver_service_pb2.DESCRIPTOR.services_by_name["ReceiverService"].full_name,
)


def server_credentials(settings: RuleServiceSettings) -> grpc.ServerCredentials:
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise ValueError("TLS needs ALERTING_TLS_CERT_FILE and ALERTING_TLS_KEY_FILE;"
                         " set ALERTING_RULE_SERVICE_TLS=false to serve plaintext on purpose")
    key, chain = Path(settings.tls_key_file).read_bytes(), Path(settings.tls_cert_file).read_bytes()
    return grpc.ssl_server_credentials([(key, chain)])


def listen(server: grpc.aio.Server, settings: RuleServiceSettings) -> int:
    """Bind the gRPC port, TLS unless settings.rule_service_tls is false; the port bound."""
    address = f"{settings.listen_host}:{settings.grpc_port}"
    if settings.rule_service_tls:
        return server.add_secure_port(address, server_credentials(settings))
    return server.add_insecure_port(address)


async def store_bootstrap_key(settings: RuleServiceSettings, lifecycle: Lifecycle, pool: asyncpg.Pool) -> None:
    key = secret_value(settings.bootstrap_admin_key)
    try:
        parse_key(key)
    except MalformedKey as error:  # a start-up error, not an outage to wait out
        raise ValueError(f"ALERTING_BOOTSTRAP_ADMIN_KEY: {error}") from None

    async def store() -> bool:
        return await bootstrap_admin_key(pool, key)

    if await retry_until_done(store, settings, what="storing the bootstrap admin key", stop=lifecycle.stop):
        log.info("stored the bootstrap admin key %s", key.partition(".")[0])


async def start_server(settings: RuleServiceSettings, pool: asyncpg.Pool, on_change: Callable[[], None],
                       notification_pool: asyncpg.Pool) -> tuple[grpc.aio.Server, int]:
    """A started server; the port it listens on (settings.grpc_port 0 picks a free one). The
    NotificationService has a pool of its own: its role may touch notifications, `pool`'s may not."""
    keys = KeyStore(pool, settings.api_key_cache_seconds, max_keys=settings.api_key_cache_entries,
                    max_unknown=settings.unknown_key_cache_entries)
    limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst, time.monotonic)
    failures = RateLimiter(settings.auth_failures_per_second, settings.auth_failure_burst, time.monotonic)
    server = grpc.aio.server(
        # Outermost first: metrics see every status, and no exception escapes authentication.
        interceptors=[ServerMetricsInterceptor(), UnexpectedErrors(), AuthInterceptor(keys, limiter, failures)],
        options=[("grpc.max_receive_message_length", settings.max_request_bytes)],
    )
    rule_service_pb2_grpc.add_RuleServiceServicer_to_server(
        RuleService(pool, on_change, settings.max_rules_per_client, settings.max_recipients_per_client), server)
    api_key_service_pb2_grpc.add_ApiKeyServiceServicer_to_server(
        ApiKeyService(pool, settings.tenant_key_self_service, settings.max_keys_per_client), server)
    notification_service_pb2_grpc.add_NotificationServiceServicer_to_server(
        NotificationService(notification_pool), server)
    dead_letter_service_pb2_grpc.add_DeadLetterServiceServicer_to_server(DeadLetterService(settings), server)
    notification_policy_service_pb2_grpc.add_NotificationPolicyServiceServicer_to_server(
        NotificationPolicyService(pool, default_policy(settings)), server)
    silence_service_pb2_grpc.add_SilenceServiceServicer_to_server(
        SilenceService(pool, settings.max_silence_seconds, settings.max_silences_per_client), server)
    receiver_key = secret_value(settings.receiver_secret_key)
    receiver_service_pb2_grpc.add_ReceiverServiceServicer_to_server(ReceiverService(
        pool, Sealer(receiver_key) if receiver_key else None,
        OutboundPolicy.of(settings.outbound_allow_http, settings.outbound_allowed_networks),
        settings.max_receivers_per_client), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = listen(server, settings)
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def serve(
    settings: RuleServiceSettings, lifecycle: Lifecycle, pool: asyncpg.Pool, producer: AIOKafkaProducer,
    notification_pool: asyncpg.Pool,
) -> None:
    """Serve gRPC and relay the outbox until stopped."""
    if settings.bootstrap_admin_key is not None:
        await store_bootstrap_key(settings, lifecycle, pool)
    relay = OutboxRelay(settings, producer, retention_seconds=settings.outbox_retention_seconds)
    relaying = asyncio.create_task(relay.run(lifecycle.stop))
    server, port = await start_server(settings, pool, relay.wake, notification_pool)
    log.info("rule-service gRPC (%s) on %s:%d", "TLS" if settings.rule_service_tls else "plaintext",
             settings.listen_host, port)
    # Ready while the relay runs and reaches Postgres (what the RPCs need; Kafka is the relay's
    # own concern, see alerting_outbox_unpublished); a relay that ended is a reason to restart.
    lifecycle.ready = lambda: not relaying.done() and relay.reaches_database
    lifecycle.alive = lambda: not relaying.done()
    try:
        await lifecycle.stop.wait()
    finally:
        await server.stop(settings.grace_seconds)
        await relaying
