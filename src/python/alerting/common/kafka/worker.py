"""The batch consume → durable step → commit loop every worker runs, with hooks around it.

The loop itself fetches, finds what the Kafka client cannot parse, publishes dead letters,
isolates poison and commits. Everything else is a `Middleware` (middleware.py): decoding,
the consumer spans, the metrics, the lag gauges, each a hook around the plain handler that
makes durable progress, in the way of faststream's middlewares.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError
from opentelemetry import context as otel_context
from opentelemetry import trace

from alerting.common import telemetry
from alerting.common.failpoints import failpoint
from alerting.common.kafka.clients import MAX_PARTITION_FETCH_BYTES, kafka_client_options
from alerting.common.kafka.dead_letters import dead_letter_message
from alerting.common.kafka.outages import is_outage, poison_reason
from alerting.common.kafka.publishing import OutgoingMessage, publish_all
from alerting.common.kafka.unreadable import find_unreadable
from alerting.common.retry import Stopping, retry_until_done
from alerting.common.settings import WorkerSettings

log = logging.getLogger(__name__)
M = TypeVar("M")


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """A decoded message, the record it came from, and the consumer span of its processing
    (the tracing middleware opens it and ends it once the batch has made durable progress;
    without it the span records nothing)."""

    record: ConsumerRecord
    message: M
    span: trace.Span = trace.INVALID_SPAN

    @property
    def trace_context(self) -> otel_context.Context:
        """The context whose parent is this message's processing: what its outputs continue."""
        return trace.set_span_in_context(self.span)


@dataclass
class Batch(Generic[M]):
    """One fetch's records of a topic on their way through the middlewares to the handler,
    and what became of each: handed over, refused before that, or found to be poison."""

    topic: str
    records: list[ConsumerRecord]
    # Records that stand for ones the Kafka client could not parse (no key, value or
    # headers), by partition and offset: the reason each is dead-lettered with.
    unparsable: dict[tuple[TopicPartition, int], str] = field(default_factory=dict)
    # What the handler gets, in order.
    deliveries: list[Delivery[M]] = field(default_factory=list)
    # Records dead-lettered before the handler sees the rest, each with its reason.
    refused: list[tuple[ConsumerRecord, str]] = field(default_factory=list)
    # Deliveries the handler raised on alone (not an outage): dead-lettered, with the error.
    poison: list[tuple[Delivery[M], BaseException]] = field(default_factory=list)


Handler = Callable[[list[Delivery[M]]], Awaitable[None]]
Step = Callable[[Batch[M]], Awaitable[None]]


class Middleware(Generic[M]):
    """Hooks around a worker's loop; each does nothing until a middleware overrides it."""

    async def consume_scope(self, batch: Batch[M], call_next: Step[M]) -> None:
        """Around the handling of each batch: what comes before `call_next`, and after it."""
        await call_next(batch)

    def on_failed_attempt(self, topic: str) -> None:
        """An attempt at a batch's dead letters or its handling failed with an outage; it is retried."""

    def after_commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The group committed these offsets: each partition's next record to consume."""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Around the whole run: for work beside the loop."""
        yield

    def ready(self) -> bool:
        """Whether this middleware lets the worker take work now."""
        return True


@dataclass(kw_only=True)
class BatchWorker(Generic[M]):
    """Consumes batches; hands each through the middlewares, outermost first, to the
    dead letters they refused and then to `handle` (which must make durable progress or
    raise), and commits only afterwards.

    Total over its input: whatever a record holds, it is processed or dead-lettered with a
    reason. A batch that fails with a dependency outage is retried with backoff and never
    committed past; one that fails otherwise is handled in parts until the poison record is
    alone and dead-lettered. A crash anywhere before the commit means the batch is delivered
    again: handlers are idempotent, and must accept any part of a batch, in order.
    """

    settings: WorkerSettings
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    handle: Handler[M]
    middlewares: Sequence[Middleware[M]]
    # Set by SIGTERM: the batch in hand is finished and committed, then run() returns.
    stop: asyncio.Event
    # Names the worker in the log lines of its retries.
    service: str
    last_batch_ok: bool = field(default=True, init=False)

    def ready(self) -> bool:
        """The last batch made durable progress (none is being retried) and every middleware is ready."""
        return self.last_batch_ok and all(middleware.ready() for middleware in self.middlewares)

    async def run(self) -> None:
        async with AsyncExitStack() as beside:
            for middleware in self.middlewares:
                await beside.enter_async_context(middleware.running())
            await self.consume()

    async def consume(self) -> None:
        while not self.stop.is_set():
            unparsable: dict[tuple[TopicPartition, int], str] = {}
            try:
                fetched = await self.consumer.getmany(
                    timeout_ms=self.settings.batch_timeout_ms, max_records=self.settings.batch_max_records
                )
            except ConsumerStoppedError:
                raise
            except Exception as error:  # the client could not parse what it fetched
                fetched = await self.unreadable_batch(error, unparsable)
            if not fetched:
                continue
            failpoint("after_consume")
            records = [record for records in fetched.values() for record in records]
            try:
                await self.process(Batch(records[0].topic, records, unparsable))
            except Stopping:
                log.info("stopping during an outage; the uncommitted batch will be redelivered")
                return
            failpoint("before_commit")
            await self.commit({tp: records[-1].offset + 1 for tp, records in fetched.items()})

    async def unreadable_batch(
        self, error: Exception, unparsable: dict[tuple[TopicPartition, int], str]
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """After getmany() raised `error`: the partition whose records the client cannot
        parse, as a batch of the readable records before them and, in place of each one it
        cannot parse, a record with no key, value or headers, noted in `unparsable` with
        `error` as its reason, which the batch's commit passes. An error that no owned
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
                unparsable.update({(tp, record.offset): reason for record in unparsed})
                self.consumer.seek(tp, found.end)
                return {tp: [*found.readable, *unparsed]}
        raise error

    async def process(self, batch: Batch[M]) -> None:
        """The batch through every middleware's consume scope to the durable step."""
        step: Step[M] = self.durable_step
        for middleware in reversed(self.middlewares):
            step = _scoped(middleware, step)
        await step(batch)

    async def durable_step(self, batch: Batch[M]) -> None:
        await self.publish_dead_letters(batch.topic, [self.dead_letter(record, reason)
                                                      for record, reason in batch.refused])
        await self.handle_isolating(batch, batch.deliveries)

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

    async def handle_isolating(self, batch: Batch[M], deliveries: list[Delivery[M]]) -> None:
        """Hand `deliveries` to the handler, retried while a dependency is out. An error that
        is no outage (outages.py) comes from a poison record: the deliveries are handed over
        again in halves until the one that raises it is alone, and it is dead-lettered with
        the error as its reason (and noted in the batch), so it holds up no other."""
        if not deliveries:
            return
        try:
            await self.retry_outages(lambda: self.handle(deliveries), batch.topic, "batch")
        except Stopping:
            raise
        except Exception as error:
            if len(deliveries) > 1:
                middle = len(deliveries) // 2
                await self.handle_isolating(batch, deliveries[:middle])
                await self.handle_isolating(batch, deliveries[middle:])
                return
            batch.poison.append((deliveries[0], error))
            await self.publish_dead_letters(batch.topic, [self.dead_letter(deliveries[0].record, poison_reason(error))])

    async def retry_outages(self, operation: Callable[[], Awaitable[None]], topic: str, what: str) -> None:
        """`operation` retried with backoff while it fails with an outage; any other error is raised."""

        def on_failure(_: BaseException) -> None:
            self.last_batch_ok = False
            for middleware in self.middlewares:
                middleware.on_failed_attempt(topic)

        await retry_until_done(operation, self.settings, what=f"{self.service} {what}", stop=self.stop,
                               on_failure=on_failure, retry_if=is_outage)
        self.last_batch_ok = True

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # The group rebalanced: the new owner gets these records again, which is safe.
            log.warning("commit failed after a rebalance, records will be redelivered: %s", error)
            return
        for middleware in self.middlewares:
            middleware.after_commit(offsets)


def _scoped(middleware: Middleware[M], call_next: Step[M]) -> Step[M]:
    async def step(batch: Batch[M]) -> None:
        await middleware.consume_scope(batch, call_next)

    return step
