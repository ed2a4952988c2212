"""The gRPC DeadLetterService: a platform topic's dead letters (`<topic>.dlq`) listed, and
chosen ones replayed to the topic they came from.

Pure functions decide what to read and what a dead letter says; the format of a dead
letter and of its replay is alerting.common.kafka.dead_letters.
The Kafka I/O around them is a thin shell: `DeadLetterLog`, a consumer outside any
consumer group that reads the dead-letter topic's one partition from explicit offsets,
and `publish_once`, one idempotent producer per replay that sends each chosen record once.
Nothing retries a replay: a failed one is reported, and repeating it is the caller's choice.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import grpc
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from alerting.common import topics
from alerting.common.kafka import OutgoingMessage, kafka_client_options, make_producer, publish_all
from alerting.common.kafka.dead_letters import (
    REASON_HEADER,
    REPLAY_HEADER,
    SOURCE_HEADER,
    header,
    header_text,
    parse_position,
    replay_message,
)
from alerting.common.settings import DeadLetterReplaySettings, KafkaSettings
from alerting.common.validation import InvalidField
from alerting.rule_service.auth import caller
from alerting.rule_service.errors import FailedPrecondition, NotFound, grpc_errors
from alerting.v1 import dead_letter_service_pb2 as api
from alerting.v1 import dead_letter_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context

DEFAULT_MAX_COUNT = 100
MAX_COUNT = 1000
MAX_REPLAY = 1000
# Dead-letter topics have one partition (deploy/topics.txt), so an offset names one record.
PARTITION = 0
# The most records one read for a replay spans.
FETCH_RECORDS = 500
# Kafka I/O of an RPC ends within its deadline, and within this long when it has none.
MAX_IO_SECONDS = 60.0


# ---------------------------------------------------------------- pure: requests
def input_topic(topic: str) -> str:
    """One of the platform's input topics, named without the topic prefix."""
    if topic not in topics.INPUT_TOPICS:
        problem = f"unknown {topic!r}" if topic else "missing"
        raise InvalidField("topic", f"{problem} (expected one of {', '.join(topics.INPUT_TOPICS)})")
    return topic


def list_window(start_offset: int, max_count: int) -> tuple[int, int]:
    """The first offset and the number of dead letters a list asks for."""
    if start_offset < 0:
        raise InvalidField("start_offset", f"{start_offset} is negative")
    if not 0 <= max_count <= MAX_COUNT:
        raise InvalidField("max_count", f"{max_count} is not between 0 and {MAX_COUNT}")
    return start_offset, max_count or DEFAULT_MAX_COUNT


def replay_offsets(offsets: Iterable[int]) -> list[int]:
    """The distinct offsets a replay asks for, in ascending order: each is replayed once."""
    chosen = sorted(set(offsets))
    if not chosen:
        raise InvalidField("offsets", "missing")
    if chosen[0] < 0:
        raise InvalidField("offsets", f"{chosen[0]} is negative")
    if len(chosen) > MAX_REPLAY:
        raise InvalidField("offsets", f"{len(chosen)} of them, at most {MAX_REPLAY} per call")
    return chosen


def fetch_windows(offsets: Sequence[int], size: int = FETCH_RECORDS) -> list[tuple[int, int]]:
    """Reads (first offset, record count) that cover ascending `offsets`: each read starts
    at a wanted offset and spans at most `size` records, so sparse offsets cost one short
    read each and dense ones share reads."""
    windows: list[tuple[int, int]] = []
    index = 0
    while index < len(offsets):
        after = bisect.bisect_left(offsets, offsets[index] + size, lo=index)
        windows.append((offsets[index], offsets[after - 1] - offsets[index] + 1))
        index = after
    return windows


# ---------------------------------------------------------------- pure: records
def describe(record: ConsumerRecord) -> api.DeadLetter:
    """A dead-letter record as the API lists it."""
    dead_letter = api.DeadLetter(
        offset=record.offset,
        reason=header_text(record, REASON_HEADER),
        key=record.key or b"",
        value_size=len(record.value or b""),
        replay_of=header_text(record, REPLAY_HEADER),
    )
    source = parse_position(header(record, SOURCE_HEADER))
    if source is not None:
        dead_letter.source.CopyFrom(
            api.DeadLetterSource(topic=source.topic, partition=source.partition, offset=source.offset))
    dead_letter.timestamp.FromMilliseconds(record.timestamp)
    return dead_letter


def page(records: Sequence[ConsumerRecord], start_offset: int, log_start: int, log_end: int
         ) -> api.ListDeadLettersResponse:
    """A list's answer: the records read from `start_offset` on, in a log that held
    offsets [log_start, log_end) when it was read."""
    next_offset = records[-1].offset + 1 if records else max(start_offset, log_start)
    return api.ListDeadLettersResponse(dead_letters=[describe(record) for record in records],
                                       next_offset=next_offset, end_offset=log_end)


def choose(found: Mapping[int, ConsumerRecord], offsets: Sequence[int], dead_letter_topic: str,
           log_start: int, log_end: int) -> list[ConsumerRecord]:
    """The records at `offsets`, in that order; NotFound naming the offsets the
    dead-letter topic does not hold (it held [log_start, log_end) when read)."""
    missing = [offset for offset in offsets if offset not in found]
    if missing:
        named = ", ".join(str(offset) for offset in missing[:10]) + (", …" if len(missing) > 10 else "")
        held = f"offsets {log_start} to {log_end - 1}" if log_end > log_start else "no dead letters"
        raise NotFound(f"offsets: {dead_letter_topic} has no dead letter at offset {named} (it holds {held})")
    return [found[offset] for offset in offsets]


# ---------------------------------------------------------------- Kafka I/O
class DeadLetterLog:
    """The one partition of a dead-letter topic, read from explicit offsets outside any
    consumer group. It holds offsets [start, end) as they were when it was opened; dead
    letters that arrive later are not read."""

    def __init__(self, consumer: AIOKafkaConsumer, partition: TopicPartition, start: int, end: int) -> None:
        self.consumer = consumer
        self.partition = partition
        self.start = start
        self.end = end

    async def read(self, offset: int, count: int) -> list[ConsumerRecord]:
        """Up to `count` records from `offset` on (from the oldest held, if that is later)."""
        offset = max(offset, self.start)
        records: list[ConsumerRecord] = []
        if offset >= self.end or count <= 0:
            return records
        self.consumer.seek(self.partition, offset)
        while len(records) < count and await self.consumer.position(self.partition) < self.end:
            batch = await self.consumer.getmany(self.partition, timeout_ms=500, max_records=count - len(records))
            records += [record for record in batch.get(self.partition, ()) if offset <= record.offset < self.end]
        return records[:count]

    async def records_at(self, offsets: Sequence[int]) -> dict[int, ConsumerRecord]:
        """The records at ascending `offsets`, by offset; those it does not hold are absent."""
        held = [offset for offset in offsets if self.start <= offset < self.end]
        wanted = set(held)
        found: dict[int, ConsumerRecord] = {}
        for first, count in fetch_windows(held):
            found.update((record.offset, record) for record in await self.read(first, count)
                         if record.offset in wanted)
        return found


@asynccontextmanager
async def open_dead_letter_log(settings: KafkaSettings, dead_letter_topic: str) -> AsyncIterator[DeadLetterLog]:
    """The dead-letter topic's partition, assigned to a consumer of no group (nothing is
    committed); FailedPrecondition if the topic is missing or not of one partition."""
    consumer = AIOKafkaConsumer(**kafka_client_options(settings), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await consumer.start()
        if dead_letter_topic not in await consumer.topics():
            raise FailedPrecondition(f"topic: {dead_letter_topic} does not exist")
        partition = TopicPartition(dead_letter_topic, PARTITION)
        consumer.assign([partition])
        start = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
        # Known once the offsets are: the consumer tracks the metadata of what it is assigned.
        partitions = consumer.partitions_for_topic(dead_letter_topic) or set()
        if partitions != {PARTITION}:
            raise FailedPrecondition(
                f"topic: {dead_letter_topic} has {len(partitions)} partitions; a dead-letter topic has one")
        yield DeadLetterLog(consumer, partition, start, end)
    finally:
        await consumer.stop()


async def publish_once(settings: DeadLetterReplaySettings, messages: Sequence[OutgoingMessage]) -> None:
    """Send each message once, through a producer of its own: idempotent, so the
    producer's own resends cannot duplicate one, and nothing here sends it again."""
    producer = make_producer(settings.dead_letter_replayer())
    try:
        await producer.start()
        await publish_all(producer, messages)
    finally:
        await producer.stop()


@asynccontextmanager
async def kafka_io(context: Context, what: str) -> AsyncIterator[None]:
    """Kafka I/O bounded by the RPC's deadline; Kafka failing is UNAVAILABLE."""
    remaining = context.time_remaining()
    seconds = MAX_IO_SECONDS if remaining is None else max(min(remaining, MAX_IO_SECONDS), 0.0)
    try:
        async with asyncio.timeout(seconds):
            yield
    except KafkaError as error:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{what}: Kafka failed: {error!r}")
    except TimeoutError:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{what}: not done within {seconds:.1f} s")


# ---------------------------------------------------------------- the service
class DeadLetterService(dead_letter_service_pb2_grpc.DeadLetterServiceServicer):
    def __init__(self, settings: DeadLetterReplaySettings) -> None:
        self.settings = settings

    @grpc_errors
    async def ListDeadLetters(self, request: api.ListDeadLettersRequest, context: Context
                              ) -> api.ListDeadLettersResponse:
        caller().require_admin("reading dead letters")
        topic = input_topic(request.topic)
        start_offset, count = list_window(request.start_offset, request.max_count)
        dead_letter_topic = self.settings.topic(topics.dead_letter(topic))
        async with kafka_io(context, f"reading {dead_letter_topic}"):
            async with open_dead_letter_log(self.settings, dead_letter_topic) as log:
                records = await log.read(start_offset, count)
        return page(records, start_offset, log.start, log.end)

    @grpc_errors
    async def ReplayDeadLetters(self, request: api.ReplayDeadLettersRequest, context: Context
                                ) -> api.ReplayDeadLettersResponse:
        caller().require_admin("replaying dead letters")
        topic = input_topic(request.topic)
        offsets = replay_offsets(request.offsets)
        dead_letter_topic, target = self.settings.topic(topics.dead_letter(topic)), self.settings.topic(topic)
        async with kafka_io(context, f"reading {dead_letter_topic}"):
            async with open_dead_letter_log(self.settings, dead_letter_topic) as log:
                found = await log.records_at(offsets)
        chosen = choose(found, offsets, dead_letter_topic, log.start, log.end)
        async with kafka_io(context, f"replaying to {target} (some of the {len(chosen)} may have been published)"):
            await publish_once(self.settings, [replay_message(record, target) for record in chosen])
        return api.ReplayDeadLettersResponse(replayed=len(chosen), offsets=offsets, topic=target)
