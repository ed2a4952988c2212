"""The hooks every worker's loop runs with (worker.py): decoding, the consumer spans and the
metrics around the handler; the lag gauges are lag.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from opentelemetry import trace

from alerting.common import telemetry
from alerting.common.kafka.decoding import InvalidEvent
from alerting.common.kafka.lag import ConsumerLag
from alerting.common.kafka.outages import poison_reason
from alerting.common.kafka.worker import Batch, Delivery, Middleware, Step
from alerting.common.settings import WorkerSettings

M = TypeVar("M")


class Decoding(Middleware[M]):
    """Each record decoded into the message the handler takes. A record whose decoding
    raises, or that stands for one the Kafka client could not parse, is refused with its
    reason: decoding does no I/O, so whatever it raises, the record causes. Every record is
    decoded, refused ones too: a decoder may note each offset it sees."""

    def __init__(self, decode: Callable[[ConsumerRecord], M]) -> None:
        self.decode = decode

    async def consume_scope(self, batch: Batch[M], call_next: Step[M]) -> None:
        for record in batch.records:
            unparsable = batch.unparsable.get((TopicPartition(record.topic, record.partition), record.offset))
            try:
                message = self.decode(record)
            except Exception as error:
                reason = str(error) if isinstance(error, InvalidEvent) else poison_reason(error)
                batch.refused.append((record, unparsable or reason))
                continue
            if unparsable is not None:
                batch.refused.append((record, unparsable))
            else:
                batch.deliveries.append(Delivery(record, message))
        await call_next(batch)


class Tracing(Middleware[M]):
    """A consumer span for each delivery, in the trace its record carries, open while the
    batch is handled (what the handler publishes continues it); a poison delivery's span
    records the error."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    async def consume_scope(self, batch: Batch[M], call_next: Step[M]) -> None:
        batch.deliveries = [replace(delivery, span=self.tracer.start_span(
            f"{delivery.record.topic} process",
            context=telemetry.context_from_headers(delivery.record.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=telemetry.messaging_attributes(delivery.record),
        )) for delivery in batch.deliveries]
        try:
            await call_next(batch)
        finally:
            for delivery, error in batch.poison:
                delivery.span.record_exception(error)
                delivery.span.set_status(trace.Status(trace.StatusCode.ERROR, poison_reason(error)))
            for delivery in batch.deliveries:
                delivery.span.end()


class Metrics(Middleware[M]):
    """Messages processed, dead-lettered and failed attempts, and each batch's duration, by
    service and topic."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def consume_scope(self, batch: Batch[M], call_next: Step[M]) -> None:
        started = time.perf_counter()
        await call_next(batch)
        telemetry.MESSAGES_PROCESSED.labels(self.service, batch.topic).inc(len(batch.deliveries) - len(batch.poison))
        if batch.refused or batch.poison:
            telemetry.MESSAGES_DEAD_LETTERED.labels(self.service, batch.topic).inc(
                len(batch.refused) + len(batch.poison))
        telemetry.BATCH_SECONDS.labels(self.service, batch.topic).observe(time.perf_counter() - started)

    def on_failed_attempt(self, topic: str) -> None:
        telemetry.MESSAGES_FAILED.labels(self.service, topic).inc()


def worker_middlewares(
    service: str, settings: WorkerSettings, consumer: AIOKafkaConsumer, decode: Callable[[ConsumerRecord], M]
) -> list[Middleware[M]]:
    """What a worker of `service` runs its loop with, outermost first: the metrics (of the
    whole batch), decoding, the spans of the decoded messages, and the lag gauges of
    `consumer`'s partitions. Spans carry the service's name as their instrumentation scope."""
    return [Metrics(service), Decoding(decode), Tracing(trace.get_tracer(service)),
            ConsumerLag(service, consumer, settings.consumer_lag_interval_seconds)]
