"""The hooks around a worker's handler, each on its own (no broker): decoding, the consumer
spans and the metrics."""

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from alerting.common.kafka.decoding import InvalidEvent
from alerting.common.kafka.middleware import Decoding, Metrics, Tracing
from alerting.common.kafka.worker import Batch, Delivery
from alerting.common.retry import Stopping

TOPIC = "alerts.new"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def record(offset: int, value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, None, value, None, 0, len(value or b""), headers)


async def test_decoding_hands_over_what_decodes_and_refuses_the_rest_with_reasons() -> None:
    seen: list[int] = []

    def decode(record: ConsumerRecord) -> str:
        seen.append(record.offset)
        if record.value == b"invalid":
            raise InvalidEvent("value: not an alert")
        if record.value == b"raises":
            raise KeyError("surprise")
        return repr(record.value)

    records = [record(0, b"good"), record(1, b"invalid"), record(2, b"raises"), record(3, None), record(4, b"also")]
    # Offset 3 stands for a record the Kafka client could not parse: refused though it decodes.
    batch: Batch[str] = Batch(TOPIC, records, {(TopicPartition(TOPIC, 0), 3): "the Kafka client cannot parse it"})
    handed: list[Batch[str]] = []

    async def call_next(batch: Batch[str]) -> None:
        handed.append(batch)

    await Decoding(decode).consume_scope(batch, call_next)
    assert handed == [batch]
    assert seen == [0, 1, 2, 3, 4]  # every record, refused ones too
    assert [(delivery.record.offset, delivery.message) for delivery in batch.deliveries] == [(0, "b'good'"),
                                                                                              (4, "b'also'")]
    assert [(record.offset, reason) for record, reason in batch.refused] == [
        (1, "value: not an alert"), (2, "KeyError: 'surprise'"), (3, "the Kafka client cannot parse it")]


def in_memory_tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("middleware-test"), exporter


async def test_each_delivery_is_handled_in_an_open_consumer_span_of_its_trace_and_poison_is_marked() -> None:
    tracer, exporter = in_memory_tracer()
    traced = record(0, b"a", (("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()),))
    batch: Batch[str] = Batch(TOPIC, [traced, record(1, b"b")])
    batch.deliveries = [Delivery(traced, "a"), Delivery(batch.records[1], "b")]
    poison = ZeroDivisionError("cannot handle b")

    async def call_next(batch: Batch[str]) -> None:
        assert [delivery.span.is_recording() for delivery in batch.deliveries] == [True, True]
        assert exporter.get_finished_spans() == ()
        batch.poison.append((batch.deliveries[1], poison))

    await Tracing[str](tracer).consume_scope(batch, call_next)
    first, second = exporter.get_finished_spans()
    assert (first.name, first.kind, second.name, second.kind) == (
        f"{TOPIC} process", trace.SpanKind.CONSUMER, f"{TOPIC} process", trace.SpanKind.CONSUMER)
    assert first.parent is not None and format(first.parent.trace_id, "032x") == TRACE_ID
    assert second.parent is None
    assert first.status.status_code == trace.StatusCode.UNSET
    assert (second.status.status_code, second.status.description) == (
        trace.StatusCode.ERROR, "ZeroDivisionError: cannot handle b")
    assert [event.name for event in second.events] == ["exception"]
    # What the handler publishes continues the delivery's span.
    assert trace.get_current_span(batch.deliveries[0].trace_context) is batch.deliveries[0].span


async def test_spans_end_when_the_handling_ends_in_an_error() -> None:
    tracer, exporter = in_memory_tracer()
    batch: Batch[str] = Batch(TOPIC, [record(0, b"a")])
    batch.deliveries = [Delivery(batch.records[0], "a")]

    async def call_next(batch: Batch[str]) -> None:
        raise Stopping("asked to stop during an outage")

    with pytest.raises(Stopping):
        await Tracing[str](tracer).consume_scope(batch, call_next)
    assert [span.name for span in exporter.get_finished_spans()] == [f"{TOPIC} process"]


def sample(name: str, service: str) -> Any:
    return REGISTRY.get_sample_value(name, {"service": service, "topic": TOPIC})


async def test_metrics_count_what_was_processed_dead_lettered_and_retried_per_service_and_topic() -> None:
    metrics: Metrics[str] = Metrics("metrics-test")
    records = [record(offset, b"x") for offset in range(5)]
    batch: Batch[str] = Batch(TOPIC, records, deliveries=[Delivery(r, "x") for r in records[:3]],
                              refused=[(records[3], "invalid"), (records[4], "invalid")])

    async def call_next(batch: Batch[str]) -> None:
        batch.poison.append((batch.deliveries[0], ValueError("poison")))

    await metrics.consume_scope(batch, call_next)
    metrics.on_failed_attempt(TOPIC)
    metrics.on_failed_attempt(TOPIC)
    assert sample("alerting_messages_processed_total", "metrics-test") == 2
    assert sample("alerting_messages_dead_lettered_total", "metrics-test") == 3
    assert sample("alerting_batch_failures_total", "metrics-test") == 2
    assert sample("alerting_batch_seconds_count", "metrics-test") == 1

    clean: Batch[str] = Batch(TOPIC, records[:1], deliveries=[Delivery(records[0], "x")])

    async def handled(batch: Batch[str]) -> None:
        pass

    await Metrics[str]("metrics-clean-test").consume_scope(clean, handled)
    assert sample("alerting_messages_processed_total", "metrics-clean-test") == 1
    assert sample("alerting_messages_dead_lettered_total", "metrics-clean-test") is None  # no series without any
