"""OpenTelemetry tracing, Prometheus metrics and the /metrics + /healthz endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiokafka import ConsumerRecord
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.util.types import AttributeValue
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from alerting.common.settings import Settings

log = logging.getLogger(__name__)

MESSAGES_PROCESSED = Counter(
    "alerting_messages_processed_total", "Kafka messages handled and committed.", ["service", "topic"]
)
MESSAGES_FAILED = Counter(
    "alerting_batch_failures_total", "Batch attempts that failed and will be retried.", ["service", "topic"]
)
MESSAGES_DEAD_LETTERED = Counter(
    "alerting_messages_dead_lettered_total", "Invalid messages sent to a dead-letter topic.", ["service", "topic"]
)
BATCH_SECONDS = Histogram(
    "alerting_batch_seconds",
    "Time from receiving a batch to the end of its durable step (the commit follows).",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "alerting_consumer_lag", "Messages behind the partition's high watermark.", ["service", "topic", "partition"]
)


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def setup_tracing(service_name: str, settings: Settings, exporter: SpanExporter | None = None) -> None:
    """Install the global tracer provider and the instrumentations every service uses.

    `exporter` overrides the configured one (tests pass an in-memory exporter).
    """
    # Spans are always recorded, so trace ids travel in Kafka headers and into the
    # notifications table even when nothing is exported.
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
    )
    if exporter is None:
        exporter = _configured_exporter(settings)
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter) if _is_in_memory(exporter) else BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _instrument_libraries()


def _configured_exporter(settings: Settings) -> SpanExporter | None:
    if settings.otel_exporter == "console":
        return ConsoleSpanExporter()
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otel_endpoint, insecure=True)
    return None


def _is_in_memory(exporter: SpanExporter) -> bool:
    return type(exporter).__name__ == "InMemorySpanExporter"


_instrumented = False


def _instrument_libraries() -> None:
    global _instrumented
    if _instrumented:
        return
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    AIOKafkaInstrumentor().instrument()
    AsyncPGInstrumentor().instrument()
    RedisInstrumentor().instrument()
    _instrumented = True


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()


HeaderList = Iterable[tuple[str, bytes]]


class _HeaderGetter(Getter[dict[str, str]]):
    def get(self, carrier: dict[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [value]

    def keys(self, carrier: dict[str, str]) -> list[str]:
        return list(carrier)


def context_from_headers(headers: HeaderList | None) -> otel_context.Context:
    """The W3C trace context carried in a Kafka message's headers."""
    carrier = {key: value.decode("latin-1") for key, value in headers or () if value is not None}
    return propagate.extract(carrier, getter=_HeaderGetter())


def context_from_traceparent(value: str) -> otel_context.Context:
    return propagate.extract({"traceparent": value} if value else {})


def traceparent(context: otel_context.Context | None = None) -> str:
    """The W3C traceparent of `context` (default: the current one), "" outside any trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier.get("traceparent", "")


def messaging_attributes(record: ConsumerRecord) -> dict[str, AttributeValue]:
    """OpenTelemetry messaging attributes of a consumed aiokafka record."""
    key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else record.key
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key
    return attributes


async def serve_metrics_and_health(
    host: str, port: int, is_healthy: Callable[[], bool]
) -> asyncio.base_events.Server:
    """A minimal HTTP endpoint: GET /metrics (Prometheus) and GET /healthz (200 or 503)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path.startswith("/metrics"):
                status, content_type, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
            elif path.startswith("/healthz"):
                healthy = is_healthy()
                status = "200 OK" if healthy else "503 Service Unavailable"
                content_type, body = "text/plain", b"ok\n" if healthy else b"unhealthy\n"
            else:
                status, content_type, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1") + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    log.info("metrics and health on http://%s:%d/metrics", host, port)
    return server
