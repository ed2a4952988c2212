"""The batch consume → durable step → commit loop every worker runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError
from opentelemetry import context as otel_context
from opentelemetry import trace

from alerting.common import telemetry
from alerting.common.failpoints import failpoint
from alerting.common.kafka.clients import MAX_PARTITION_FETCH_BYTES, kafka_client_options
from alerting.common.kafka.dead_letters import dead_letter_message
from alerting.common.kafka.decoding import InvalidEvent
from alerting.common.kafka.outages import is_outage, poison_reason
from alerting.common.kafka.publishing import OutgoingMessage, publish_all
from alerting.common.kafka.unreadable import find_unreadable
from alerting.common.retry import Stopping, retry_until_done
from alerting.common.settings import Settings

log = logging.getLogger(__name__)
M = TypeVar("M")


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """A decoded message, the record it came from, and the consumer span of its processing,
    which the batch worker opened and ends once the batch has made durable progress."""

    record: ConsumerRecord
    message: M
    span: trace.Span

    @property
    def trace_context(self) -> otel_context.Context:
        """The context whose parent is this message's processing: what its outputs continue."""
        return trace.set_span_in_context(self.span)


class BatchWorker(Generic[M]):
    """Consumes batches; decodes each record, dead-letters invalid ones, hands the rest to
    `handle` (which must make durable progress or raise), and commits only afterwards.

    Total over its input: whatever a record holds, it is processed or dead-lettered with a
    reason. `decode` does no I/O, so anything it raises dead-letters the record. A batch that
    fails with a dependency outage is retried with backoff and never committed past; one that
    fails otherwise is handled in parts until the poison record is alone and dead-lettered.
    A crash anywhere before the commit means the batch is delivered again: handlers are
    idempotent, and must accept any part of a batch, in order.

    Beside the loop, every `consumer_lag_interval_seconds` it measures the lag of the
    partitions it owns, drops the lag of those it no longer owns, and notes whether the
    broker answered: a worker is ready while its batch succeeds and the broker answers.
    """

    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        decode: Callable[[ConsumerRecord], M],
        handle: Callable[[list[Delivery[M]]], Awaitable[None]],
        stop: asyncio.Event,
    ) -> None:
        self.service = service
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.decode = decode
        self.handle = handle
        # Set by SIGTERM: the batch in hand is finished and committed, then run() returns.
        self.stop_requested = stop
        self.last_batch_ok = True
        # Whether the broker answered the last lag measurement.
        self.broker_reachable = True
        # The partitions whose lag this worker reports.
        self.lag_partitions: set[TopicPartition] = set()
        # Spans carry the service's name as their instrumentation scope.
        self.tracer = trace.get_tracer(service)
        # The records of the batch in hand that stand for ones the client could not parse.
        self.unparsed: dict[tuple[TopicPartition, int], str] = {}

    def ready(self) -> bool:
        """The last batch made durable progress (none is being retried) and the broker answers."""
        return self.last_batch_ok and self.broker_reachable

    async def run(self) -> None:
        measuring = asyncio.create_task(self.measure_lag_forever())
        try:
            await self.consume()
        finally:
            measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await measuring
            self.drop_lag(self.lag_partitions)  # a stopped worker owns no partition

    async def consume(self) -> None:
        while not self.stop_requested.is_set():
            try:
                batch = await self.consumer.getmany(
                    timeout_ms=self.settings.batch_timeout_ms, max_records=self.settings.batch_max_records
                )
            except ConsumerStoppedError:
                raise
            except Exception as error:  # the client could not parse what it fetched
                batch = await self.unreadable_batch(error)
            if not batch:
                continue
            failpoint("after_consume")
            try:
                await self.process(batch)
            except Stopping:
                log.info("stopping during an outage; the uncommitted batch will be redelivered")
                return
            failpoint("before_commit")
            await self.commit(batch)

    async def unreadable_batch(self, error: Exception) -> dict[TopicPartition, list[ConsumerRecord]]:
        """After getmany() raised `error`: the partition whose records the client cannot
        parse, as a batch of the readable records before them and, in place of each one it
        cannot parse, a record with no key, value or headers, which process() dead-letters
        (with `error` as its reason) and the batch's commit passes. An error that no owned
        partition explains is raised."""
        for tp in sorted(self.consumer.assignment()):
            found = await find_unreadable(kafka_client_options(self.settings), tp, await self.consumer.position(tp),
                                          MAX_PARTITION_FETCH_BYTES)
            if found is not None:
                log.warning("%s/%d: offsets %d-%d cannot be parsed by the Kafka client (%r): dead-lettering them",
                            tp.topic, tp.partition, found.first, found.end - 1, error)
                unparsed = [ConsumerRecord(tp.topic, tp.partition, offset, -1, 0, None, None, None, 0, 0, ())
                            for offset in range(found.first, found.end)]
                reason = f"the Kafka client cannot parse it: {poison_reason(error)}"
                self.unparsed.update({(tp, record.offset): reason for record in unparsed})
                self.consumer.seek(tp, found.end)
                return {tp: [*found.readable, *unparsed]}
        raise error

    async def measure_lag_forever(self) -> None:
        """Measure the lag every interval, until cancelled. A measurement the broker does not
        answer in time makes the worker unready until one succeeds."""
        interval = self.settings.consumer_lag_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.measure_lag(), max(2 * interval, 10.0))
            except Exception as error:  # the broker out of reach, or a timeout
                if self.broker_reachable:
                    log.warning("%s cannot measure its consumer lag, the broker does not answer: %r",
                                self.service, error)
                self.broker_reachable = False
            else:
                if not self.broker_reachable:
                    log.info("%s reaches the broker again", self.service)
                self.broker_reachable = True

    async def measure_lag(self) -> None:
        """Set the lag of every partition this worker owns (end offset minus the group's
        committed offset, or minus the log start before any commit), and drop the lag of
        partitions it reported but no longer owns (lost in a rebalance)."""
        owned = set(self.consumer.assignment())
        self.drop_lag(self.lag_partitions - owned)
        partitions = sorted(owned)
        if not partitions:
            return
        ends = await self.consumer.end_offsets(partitions)
        committed = dict(zip(
            partitions, await asyncio.gather(*(self.consumer.committed(tp) for tp in partitions)), strict=True))
        never_committed = [tp for tp in partitions if committed[tp] is None]
        starts = await self.consumer.beginning_offsets(never_committed) if never_committed else {}
        still_owned = self.consumer.assignment()  # a rebalance may have come meanwhile
        self.drop_lag(self.lag_partitions - still_owned)
        for tp in partitions:
            if tp in still_owned:
                done = committed[tp] if committed[tp] is not None else starts[tp]
                self.set_lag(tp, ends[tp] - done)

    def set_lag(self, tp: TopicPartition, lag: int) -> None:
        telemetry.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(lag, 0))
        self.lag_partitions.add(tp)

    def drop_lag(self, partitions: set[TopicPartition]) -> None:
        """Remove these partitions' lag series: another worker reports them now."""
        for tp in list(partitions):
            with contextlib.suppress(KeyError):
                telemetry.CONSUMER_LAG.remove(self.service, tp.topic, str(tp.partition))
            self.lag_partitions.discard(tp)

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        started = time.perf_counter()
        records = [record for records in batch.values() for record in records]
        topic = records[0].topic
        deliveries: list[Delivery[M]] = []
        dead_letters: list[OutgoingMessage] = []
        for record in records:
            unparsed = self.unparsed.pop((TopicPartition(record.topic, record.partition), record.offset), None)
            try:
                # Those that stand for unparsable records too: a decoder may note every offset.
                message = self.decode(record)
            except Exception as error:  # decoding does no I/O: whatever it raises, the record causes
                reason = str(error) if isinstance(error, InvalidEvent) else poison_reason(error)
                dead_letters.append(self.dead_letter(record, unparsed or reason))
                continue
            if unparsed is not None:
                dead_letters.append(self.dead_letter(record, unparsed))
                continue
            span = self.tracer.start_span(
                f"{record.topic} process",
                context=telemetry.context_from_headers(record.headers),
                kind=trace.SpanKind.CONSUMER,
                attributes=telemetry.messaging_attributes(record),
            )
            deliveries.append(Delivery(record, message, span))
        try:
            await self.publish_dead_letters(topic, dead_letters)
            poisoned = await self.handle_isolating(topic, deliveries)
        finally:
            for delivery in deliveries:
                delivery.span.end()
        telemetry.MESSAGES_PROCESSED.labels(self.service, topic).inc(len(deliveries) - poisoned)
        if dead_letters or poisoned:
            telemetry.MESSAGES_DEAD_LETTERED.labels(self.service, topic).inc(len(dead_letters) + poisoned)
        telemetry.BATCH_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)

    def dead_letter(self, record: ConsumerRecord, reason: str) -> OutgoingMessage:
        """The record's dead letter, logged in the record's trace (when it carries one), so
        the line joins it."""
        token = otel_context.attach(telemetry.context_from_headers(record.headers))
        try:
            log.warning("dead-lettering %s/%d/%d: %s", record.topic, record.partition, record.offset, reason)
        finally:
            otel_context.detach(token)
        return dead_letter_message(record, reason)

    async def publish_dead_letters(self, topic: str, dead_letters: list[OutgoingMessage]) -> None:
        if dead_letters:
            await self.retry_outages(lambda: publish_all(self.producer, dead_letters), topic, "dead letters")

    async def handle_isolating(self, topic: str, deliveries: list[Delivery[M]]) -> int:
        """Hand `deliveries` to the handler, retried while a dependency is out. An error that
        is no outage (common.outages) comes from a poison record: the deliveries are handed
        over again in halves until the one that raises it is alone, and it is dead-lettered
        with the error as its reason, so it holds up no other. Returns how many were."""
        if not deliveries:
            return 0
        try:
            await self.retry_outages(lambda: self.handle(deliveries), topic, "batch")
        except Stopping:
            raise
        except Exception as error:
            if len(deliveries) > 1:
                middle = len(deliveries) // 2
                return (await self.handle_isolating(topic, deliveries[:middle])
                        + await self.handle_isolating(topic, deliveries[middle:]))
            poison = deliveries[0]
            poison.span.record_exception(error)
            poison.span.set_status(trace.Status(trace.StatusCode.ERROR, poison_reason(error)))
            await self.publish_dead_letters(topic, [self.dead_letter(poison.record, poison_reason(error))])
            return 1
        return 0

    async def retry_outages(self, operation: Callable[[], Awaitable[None]], topic: str, what: str) -> None:
        """`operation` retried with backoff while it fails with an outage; any other error is raised."""

        def on_failure(_: BaseException) -> None:
            self.last_batch_ok = False
            telemetry.MESSAGES_FAILED.labels(self.service, topic).inc()

        await retry_until_done(operation, self.settings, what=f"{self.service} {what}", stop=self.stop_requested,
                               on_failure=on_failure, retry_if=is_outage)
        self.last_batch_ok = True

    async def commit(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # The group rebalanced: the new owner gets these records again, which is safe.
            log.warning("commit failed after a rebalance, records will be redelivered: %s", error)
            return
        owned = self.consumer.assignment()  # a rebalance may have come during the commit
        for tp, offset in offsets.items():
            highwater = self.consumer.highwater(tp) if tp in owned else None
            if highwater is not None:
                self.set_lag(tp, highwater - offset)
