"""The rule-service's gRPC server (RuleService, NotificationService, DeadLetterService,
health checking, reflection, server metrics) and the outbox relay beside it, served until
the service is asked to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import grpc
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from alerting.common import ports
from alerting.common.service import Lifecycle
from alerting.common.settings import Settings
from alerting.rule_service.dead_letters import DeadLetterService
from alerting.rule_service.grpc_metrics import ServerMetricsInterceptor
from alerting.rule_service.notifications import NotificationService
from alerting.rule_service.outbox import OutboxRelay
from alerting.rule_service.servicer import RuleService
from alerting.v1 import (
    dead_letter_service_pb2,
    dead_letter_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
)

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    rule_service_pb2.DESCRIPTOR.services_by_name["RuleService"].full_name,
    notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    dead_letter_service_pb2.DESCRIPTOR.services_by_name["DeadLetterService"].full_name,
)


class RuleServiceSettings(Settings):
    grpc_port: int = ports.RULE_SERVICE_GRPC_PORT
    grace_seconds: float = 5.0
    # Published outbox rows are deleted after this long (`rule.changed` keeps every change).
    outbox_retention_seconds: float = 7 * 24 * 3600.0


async def start_server(settings: RuleServiceSettings, pool: asyncpg.Pool, on_change: Callable[[], None]
                       ) -> tuple[grpc.aio.Server, int]:
    """A started server; the port it listens on (settings.grpc_port 0 picks a free one)."""
    server = grpc.aio.server(interceptors=[ServerMetricsInterceptor()])
    rule_service_pb2_grpc.add_RuleServiceServicer_to_server(RuleService(pool, on_change), server)
    notification_service_pb2_grpc.add_NotificationServiceServicer_to_server(NotificationService(pool), server)
    dead_letter_service_pb2_grpc.add_DeadLetterServiceServicer_to_server(DeadLetterService(settings), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"{settings.listen_host}:{settings.grpc_port}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def serve(
    settings: RuleServiceSettings, lifecycle: Lifecycle, pool: asyncpg.Pool, producer: AIOKafkaProducer
) -> None:
    """Serve gRPC and relay the outbox until stopped."""
    relay = OutboxRelay(settings, producer, retention_seconds=settings.outbox_retention_seconds)
    relaying = asyncio.create_task(relay.run(lifecycle.stop))
    server, port = await start_server(settings, pool, relay.wake)
    log.info("rule-service gRPC on %s:%d", settings.listen_host, port)
    # Ready while the relay runs and reaches Postgres (what the RPCs need; Kafka is the relay's
    # own concern, see alerting_outbox_unpublished); a relay that ended is a reason to restart.
    lifecycle.ready = lambda: not relaying.done() and relay.reaches_database
    lifecycle.alive = lambda: not relaying.done()
    try:
        await lifecycle.stop.wait()
    finally:
        await server.stop(settings.grace_seconds)
        await relaying
