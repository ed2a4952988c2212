"""Kafka producers and the batch consume → durable step → commit loop every worker runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.client import ConnectionGroup
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String
from google.protobuf.message import DecodeError, Message
from opentelemetry import context as otel_context
from opentelemetry import trace

from alerting.common import telemetry
from alerting.common.failpoints import failpoint
from alerting.common.outages import is_outage, poison_reason
from alerting.common.retry import Stopping, retry_until_done
from alerting.common.settings import Settings, secret_value
from alerting.common.topics import SCHEMA_VERSION, dead_letter
from alerting.common.unreadable import find_unreadable
from alerting.common.validation import MAX_EVENT_BYTES

log = logging.getLogger(__name__)
M = TypeVar("M")
E = TypeVar("E", bound=Message)
# What one fetch of a worker's consumer may bring of a partition.
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Where the broker is and how to reach it: the bootstrap servers and the security
    options, for every aiokafka producer, consumer and admin client. SSL and SASL_SSL verify
    the broker's certificate and name; SASL_* authenticate with SCRAM."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = dict(bootstrap_servers=settings.kafka_bootstrap, security_protocol=protocol)
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_ca_file or None)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = secret_value(settings.kafka_sasl_password)
        if not settings.kafka_sasl_username or not password:
            # Refused here, at start-up, rather than by the broker after every retry.
            raise ValueError(f"ALERTING_KAFKA_SECURITY_PROTOCOL={protocol} needs ALERTING_KAFKA_SASL_USERNAME "
                             "and ALERTING_KAFKA_SASL_PASSWORD (or ALERTING_KAFKA_SASL_PASSWORD_FILE)")
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username, sasl_plain_password=password)
    return options


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica."""
    options: dict[str, Any] = dict(
        **kafka_client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=30000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, group_id: str, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A group consumer that never commits on its own: the loop commits after durable progress.

    Consumer groups are broker-wide, so the group id carries the topic prefix too. With an
    instance id the consumer is a static member: killed and restarted within the session
    timeout, it resumes its own partitions without a rebalance of the group."""
    options: dict[str, Any] = dict(
        **kafka_client_options(settings),
        group_id=settings.topic(group_id),
        group_instance_id=f"{group_id}-{settings.instance_id}" if settings.instance_id else None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        # A batch that waits out a long outage must not get the consumer thrown out of the group.
        max_poll_interval_ms=30 * 60 * 1000,
    )
    options.update(overrides)
    return AIOKafkaConsumer(*[settings.topic(topic) for topic in topics], **options)


async def start_clients(settings: Settings, *clients: AIOKafkaProducer | AIOKafkaConsumer,
                        stop: asyncio.Event | None = None) -> None:
    """Start each Kafka client, retrying with backoff while the broker cannot be reached,
    so a service started before Kafka (or during an outage) waits instead of dying."""
    for client in clients:
        await retry_until_done(client.start, settings, what=f"starting a Kafka {type(client).__name__}", stop=stop)


@asynccontextmanager
async def worker_clients(
    settings: Settings, group_id: str, topic: str, stop: asyncio.Event
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer]]:
    """A worker's Kafka clients, started (waiting for the broker): a group consumer of
    `topic`, and a producer for its outputs and dead letters. On exit both stop, the
    consumer leaving its group."""
    consumer = make_consumer(settings, group_id, topic)
    producer = make_producer(settings)
    try:
        await start_clients(settings, producer, consumer, stop=stop)
        yield consumer, producer
    finally:
        await stop_consumer(consumer)
        await producer.stop()


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    # The trace context the message continues; the aiokafka instrumentation injects it.
    trace_context: otel_context.Context | None = None


async def publish_all(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    """Send every message and wait until the broker has acknowledged all of them."""
    deliveries = []
    for message in messages:
        token = otel_context.attach(message.trace_context) if message.trace_context is not None else None
        try:
            deliveries.append(
                await producer.send(message.topic, message.value, key=message.key, headers=list(message.headers))
            )
        finally:
            if token is not None:
                otel_context.detach(token)
    if deliveries:
        await asyncio.gather(*deliveries)


class InvalidEvent(Exception):
    """A message that can never be processed; it goes to the dead-letter topic with this reason."""


class VersionedEvent(Protocol):
    """Every event of alerting.v1 that travels over Kafka carries its schema version."""

    schema_version: int


def decode(record: ConsumerRecord, message_type: type[E]) -> E:
    """The record's value as a `message_type` event of the schema version this code reads;
    InvalidEvent when it is neither. Callers check the event's own fields after this."""
    if len(record.value or b"") > MAX_EVENT_BYTES:
        raise InvalidEvent(f"value: {len(record.value or b'')} bytes, more than {MAX_EVENT_BYTES}")
    try:
        event = message_type.FromString(record.value or b"")
    except DecodeError as error:
        raise InvalidEvent(f"undecodable {message_type.__name__}: {error}") from error
    version = cast(VersionedEvent, event).schema_version
    if version != SCHEMA_VERSION:
        raise InvalidEvent(f"schema_version: unsupported {version} (expected {SCHEMA_VERSION})")
    return event


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


def dead_letter_message(record: ConsumerRecord, reason: str) -> OutgoingMessage:
    """The record for `<topic>.dlq`: key, value and headers kept, the reason and source
    added. Its trace goes on: the trace headers are continued, not copied (the Kafka
    instrumentation injects the context of the dead letter's send, in the same trace)."""
    headers = [(key, value) for key, value in record.headers or ()
               if key not in ("dlq.reason", "dlq.source") and key not in telemetry.TRACE_HEADERS]
    headers += [
        # Bounded, and valid UTF-8 whatever the reason holds (a lone surrogate is escaped).
        ("dlq.reason", reason.encode("utf-8", "backslashreplace")[:2000].decode("utf-8", "ignore").encode()),
        ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]
    return OutgoingMessage(
        topic=dead_letter(record.topic),
        value=record.value or b"",
        key=record.key,
        headers=headers,
        trace_context=telemetry.context_from_headers(record.headers),
    )


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


class _LeaveGroupResponse_v3(Response):
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")),
                          ("error_code", Int16))),
    )


class _LeaveGroupRequest_v3(RequestStruct):
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = _LeaveGroupResponse_v3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")), ("group_instance_id", String("utf-8")))),
    )


class _StaticMemberLeave(Request[_LeaveGroupRequest_v3]):
    """LeaveGroup v3 (KIP-345), which names a static member by its instance id: aiokafka
    only sends the older versions, which cannot, and skips leaving for static members."""

    API_KEY = 13

    def __init__(self, group_id: str, member_id: str, instance_id: str) -> None:
        self.group_id = group_id
        self.member_id = member_id
        self.instance_id = instance_id

    def build(self, request_struct_class: type[_LeaveGroupRequest_v3]) -> _LeaveGroupRequest_v3:
        return request_struct_class(self.group_id, [(self.member_id, self.instance_id)])


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a group consumer, leaving the group first so its partitions are handed over at
    once rather than after the session timeout: aiokafka leaves only as a dynamic member,
    so a static member (one with an instance id) leaves here. Best effort: a failed leave
    costs the session timeout, nothing more."""
    coordinator = consumer._coordinator  # no public API reaches the group coordinator
    instance_id = consumer._group_instance_id
    joined = coordinator is not None and coordinator.generation > 0 and coordinator.coordinator_id is not None
    if instance_id and joined:
        request = _StaticMemberLeave(coordinator.group_id, coordinator.member_id, instance_id)
        try:
            response = await consumer._client.send(coordinator.coordinator_id, request,
                                                   group=ConnectionGroup.COORDINATION)
            if response.error_code:
                log.warning("leaving the group as %s failed: error %d", instance_id, response.error_code)
        except KafkaError as error:
            log.warning("leaving the group as %s failed: %r", instance_id, error)
    await consumer.stop()
