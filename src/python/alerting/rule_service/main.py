"""rule-service: gRPC CRUD for clients and rules, with health checking and reflection,
and the outbox relay that publishes every committed rule change to `rule.changed`.

Wiring only: the server is server.py, the RPCs servicer.py, the outbox outbox.py.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer, filters

from alerting.common.db import DatabaseRole, create_pool
from alerting.common.kafka import make_producer
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import RuleServiceSettings
from alerting.rule_service.server import serve


async def run(settings: RuleServiceSettings, lifecycle: Lifecycle) -> None:
    async with AsyncExitStack() as resources:
        pool = await create_pool(settings, DatabaseRole.CONTROL_PLANE, stop=lifecycle.stop)
        resources.push_async_callback(pool.close)
        # The NotificationService's own role: the control plane's may not touch notifications.
        notification_pool = await create_pool(settings, DatabaseRole.NOTIFICATION_ADMIN, stop=lifecycle.stop)
        resources.push_async_callback(notification_pool.close)
        producer = make_producer(settings)
        resources.push_async_callback(producer.stop)
        await serve(settings, lifecycle, pool, producer, notification_pool)


def instrument_grpc_server() -> None:
    """Server spans for every RPC but health checking: the instrumentation wraps a streaming
    handler as a generator, which the health servicer's Watch is not (it would answer
    UNKNOWN), and probes need no traces."""
    GrpcAioInstrumentorServer(filter_=filters.negate(filters.health_check())).instrument()


def main() -> None:
    instrument_grpc_server()
    # asyncio's own loop: under uvloop, an aiokafka consumer opened in a grpc.aio handler (the
    # DeadLetterService's) never answers; the rule-service's cost is not per notification.
    run_service("rule-service", RuleServiceSettings(), run, libuv=False)


if __name__ == "__main__":
    main()
