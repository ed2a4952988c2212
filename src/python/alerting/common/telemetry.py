"""OpenTelemetry tracing, Prometheus metrics and the /metrics, /livez and /readyz endpoint."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
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
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.util.types import AttributeValue
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from alerting.common import logs
from alerting.common.settings import TelemetrySettings, TracingSettings, tracing_settings
from alerting.common.settings import service_name as resolved_service_name

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
    "alerting_consumer_lag",
    "Messages behind the partition's high watermark: its end offset minus the group's committed offset.",
    ["service", "topic", "partition"],
)


def setup_logging(settings: TelemetrySettings, service: str = "") -> None:
    """Root logging to stderr at ALERTING_LOG_LEVEL, as text or JSON (ALERTING_LOG_FORMAT),
    every line with the current trace and span ids. `service` is the service's name in JSON
    lines; OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) overrides it."""
    logs.setup(settings.log_level, settings.log_format, resolved_service_name(service))


def setup_tracing(service_name: str, settings: TelemetrySettings, exporter: SpanExporter | None = None) -> None:
    """Install the global tracer provider and the instrumentations every service uses.

    `exporter` overrides the configured ones (tests pass an in-memory exporter).
    """
    trace.set_tracer_provider(tracer_provider(tracing_settings(service_name, settings), exporter))
    _instrument_libraries()


def tracer_provider(config: TracingSettings, exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider as `config` says (or exporting to `exporter` alone)."""
    # Spans are always recorded, so trace ids travel in Kafka headers and into the
    # notifications table even when nothing is exported.
    provider = TracerProvider(resource=Resource.create(dict(config.resource_attributes)), sampler=sampler(config))
    exporters = [exporter] if exporter is not None else _configured_exporters(config)
    for each in exporters:
        provider.add_span_processor(SimpleSpanProcessor(each) if _is_in_memory(each) else BatchSpanProcessor(each))
    return provider


def sampler(config: TracingSettings) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names; the default follows the parent's decision and
    records a ratio of new traces (OTEL_TRACES_SAMPLER_ARG, else ALERTING_OTEL_SAMPLE_RATIO)."""
    root: Sampler = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF}.get(
        config.sampler.removeprefix("parentbased_"), TraceIdRatioBased(config.sample_ratio))
    return ParentBased(root) if config.sampler.startswith("parentbased_") else root


def _configured_exporters(config: TracingSettings) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in config.exporters:
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter(endpoint=config.endpoint, insecure=config.endpoint_insecure))
        elif name == "zipkin":
            # Zipkin's v2 JSON over HTTP; the exporter reads OTEL_EXPORTER_ZIPKIN_ENDPOINT itself.
            from opentelemetry.exporter.zipkin.json import ZipkinExporter

            exporters.append(ZipkinExporter())
    return exporters


def _is_in_memory(exporter: SpanExporter) -> bool:
    return type(exporter).__name__ == "InMemorySpanExporter"


# The client libraries traced, by the module whose import says a service uses it.
# Not aiokafka: its spans per message sent and received cost the workers a third of their
# CPU; publishing writes the trace's headers itself (kafka/publishing.py) and each worker's
# loop makes one span per message it processes (kafka/middleware.py).
_INSTRUMENTATIONS = {
    "asyncpg": ("opentelemetry.instrumentation.asyncpg", "AsyncPGInstrumentor"),
    "redis": ("opentelemetry.instrumentation.redis", "RedisInstrumentor"),
}
_instrumented: set[str] = set()


def _instrument_libraries() -> None:
    """Trace each client library the process has imported by now (a service imports what it
    uses before it sets tracing up): importing one that it does not use, and its
    instrumentation, would only lengthen its start. The instrumentations' check of installed
    versions reads every package's metadata: skipped, the lockfile pins them together."""
    for library, (module, instrumentor) in _INSTRUMENTATIONS.items():
        if library in sys.modules and library not in _instrumented:
            getattr(importlib.import_module(module), instrumentor)().instrument(skip_dep_check=True)
            _instrumented.add(library)


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()


HeaderList = Iterable[tuple[str, bytes]]
# The W3C trace context headers a Kafka message carries.
TRACE_HEADERS = ("traceparent", "tracestate")


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


def trace_headers(context: otel_context.Context) -> list[tuple[str, bytes]]:
    """The Kafka headers that carry `context` (W3C traceparent, tracestate, baggage)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(key, value.encode("latin-1")) for key, value in carrier.items()]


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


def _holds(check: Callable[[], bool], what: str) -> bool:
    """A probe's answer; a probe that raises answers no (and says why in the log)."""
    try:
        return bool(check())
    except Exception:
        log.exception("the %s check failed", what)
        return False


async def serve_metrics_and_health(
    host: str, port: int, is_ready: Callable[[], bool], is_alive: Callable[[], bool] = lambda: True
) -> asyncio.base_events.Server:
    """A minimal HTTP endpoint: GET /metrics (Prometheus); GET /livez, 200 while the process
    runs (`is_alive`), else 503; GET /readyz, 200 when the service has started and can do its
    work (`is_ready`), else 503; GET /healthz, the same as /readyz (older probes use it)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = (parts[1] if len(parts) > 1 else "/").split("?", 1)[0]
            if path == "/metrics":
                status, content_type, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
            elif path in ("/readyz", "/healthz"):
                ready = _holds(is_ready, "readiness")
                status = "200 OK" if ready else "503 Service Unavailable"
                content_type, body = "text/plain", b"ok\n" if ready else b"not ready\n"
            elif path == "/livez":
                alive = _holds(is_alive, "liveness")
                status = "200 OK" if alive else "503 Service Unavailable"
                content_type, body = "text/plain", b"ok\n" if alive else b"not alive\n"
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
