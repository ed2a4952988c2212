"""rule-service: gRPC CRUD for clients and rules, with health checking and reflection,
and the outbox relay that publishes every committed rule change to `rule.changed`.

Wiring only: the server is server.py, the RPCs servicer.py, the outbox outbox.py.
"""

from __future__ import annotations

from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer, filters

from alerting.common.db import create_pool
from alerting.common.kafka import make_producer
from alerting.common.service import Lifecycle, run_service
from alerting.rule_service.server import RuleServiceSettings, serve


async def run(settings: RuleServiceSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, stop=lifecycle.stop)
    producer = make_producer(settings)
    try:
        await serve(settings, lifecycle, pool, producer)
    finally:
        await producer.stop()
        await pool.close()


def instrument_grpc_server() -> None:
    """Server spans for every RPC but health checking: the instrumentation wraps a streaming
    handler as a generator, which the health servicer's Watch is not (it would answer
    UNKNOWN), and probes need no traces."""
    GrpcAioInstrumentorServer(filter_=filters.negate(filters.health_check())).instrument()


def main() -> None:
    instrument_grpc_server()
    run_service("rule-service", RuleServiceSettings(), run)


if __name__ == "__main__":
    main()
