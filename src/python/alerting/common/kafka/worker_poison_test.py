"""The worker loop is total, on the real broker: whatever a batch holds (records that do not
decode, records whose decoding raises anything, records whose handling raises anything,
a dependency out for a while, any headers), every record is processed or dead-lettered
with a reason, the loop never dies, and it commits past all of them."""

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from alerting.common import topics
from alerting.common.kafka import InvalidEvent, OutgoingMessage, make_producer, publish_all
from alerting.common.kafka.clients import worker_clients
from alerting.common.kafka.dead_letters import reason_header
from alerting.common.kafka.middleware import worker_middlewares
from alerting.common.kafka.worker import BatchWorker, Delivery
from alerting.sender.notifications import decode_notification_ready
from alerting.testsupport import stack
from alerting.testsupport.profiles import on_the_stack
from alerting.testsupport.services import read, send_unparsable, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.strategies import any_notification_ready, headers, values_of
from alerting.v1 import events_pb2

TOPIC = topics.NOTIFICATIONS_READY
# What the test's handler and decoder do with a valid record, chosen by the test per record.
FATES = ("processed", "decode raises", "handle raises", "outage first")
examples = itertools.count()


def valid(notification_id: str) -> bytes:
    return events_pb2.NotificationReady(schema_version=topics.SCHEMA_VERSION,
                                        notification_id=notification_id).SerializeToString()


class Fates:
    """The decoder and the handler under test: the real decoding of `notifications.ready`,
    then, by each id's fate, an error of any kind from decoding or handling, or an outage
    that passes after one attempt."""

    def __init__(self, fates: dict[str, str]) -> None:
        self.fates = fates
        self.processed: Counter[str] = Counter()
        self.outages_left = {notification_id for notification_id, fate in fates.items() if fate == "outage first"}

    def decode(self, record: ConsumerRecord) -> events_pb2.NotificationReady:
        event = decode_notification_ready(record)
        if self.fates.get(event.notification_id) == "decode raises":
            raise KeyError(event.notification_id)
        return event

    async def handle(self, deliveries: list[Delivery[events_pb2.NotificationReady]]) -> None:
        ids = [delivery.message.notification_id for delivery in deliveries]
        if poison := [i for i in ids if self.fates.get(i) == "handle raises"]:
            raise ZeroDivisionError(f"cannot handle {poison[0]}")
        if down := self.outages_left.intersection(ids):
            self.outages_left -= down
            raise ConnectionResetError("the dependency went away")
        self.processed.update(ids)


async def run_until(settings: StackSettings, fated: Fates, service: str,
                    committed: Callable[[AIOKafkaConsumer], Awaitable[bool]]) -> None:
    """The worker loop over TOPIC with the fates' decoder and handler, until `committed`
    holds of its consumer; the loop must not end before."""
    stop = asyncio.Event()
    async with worker_clients(settings, service, TOPIC, stop) as (consumer, producer):
        worker = BatchWorker(settings=settings, consumer=consumer, producer=producer, handle=fated.handle,
                             middlewares=worker_middlewares(service, settings, consumer, fated.decode), stop=stop,
                             service=service)
        running = asyncio.create_task(worker.run())

        async def committed_past_everything() -> bool:
            assert not running.done(), "the worker loop ended"
            return await committed(consumer)

        try:
            await wait_until(committed_past_everything, 60, "every record committed")
        finally:
            stop.set()
            await running


@on_the_stack()
@given(batch=st.lists(st.one_of(
    st.tuples(st.sampled_from(FATES), st.uuids().map(str), headers).map(lambda t: (valid(t[1]), t[2], t[0], t[1])),
    # Any value a producer can send (the broker takes at most 1 MiB).
    st.tuples(values_of(any_notification_ready()).filter(lambda value: len(value) < 1_000_000), headers)
    .map(lambda t: (t[0], t[1], None, None)),
), min_size=1, max_size=40))
async def test_every_record_is_processed_or_dead_lettered_with_a_reason_and_the_loop_commits_past_all(
    stack_settings: StackSettings, batch: list[tuple[bytes, list[tuple[str, bytes | None]], str | None, str | None]]
) -> None:
    settings = stack_settings.model_copy(update={
        "topic_prefix": f"{stack_settings.topic_prefix}{next(examples)}.", "batch_max_records": 16,
        "batch_timeout_ms": 50})
    await stack.create_topics(settings, {TOPIC: 2})
    # Records the test knows: each id once, so that its fate is its own.
    fates = {notification_id: fate for _, _, fate, notification_id in batch if notification_id and fate}
    producer = make_producer(settings)
    await producer.start()
    try:
        await publish_all(producer, [
            OutgoingMessage(settings.topic(TOPIC), value, key=str(n).encode(),
                            headers=[(key, header) for key, header in record_headers if header is not None])
            for n, (value, record_headers, _, _) in enumerate(batch)])
    finally:
        await producer.stop()

    async def committed_past_everything(consumer: AIOKafkaConsumer) -> bool:
        partitions = consumer.assignment()
        if not partitions:
            return False
        ends = await consumer.end_offsets(list(partitions))
        return sum(ends.values()) == len(batch) and all(
            [(await consumer.committed(tp) or 0) == end for tp, end in ends.items()])

    fated = Fates(fates)
    await run_until(settings, fated, "poison-test", committed_past_everything)

    # Each record's one outcome, as the fates and the real decoder say: processed (its id),
    # or dead-lettered with its reason (keyed by its position in the batch).
    processed: Counter[str] = Counter()
    dead_letters: dict[bytes, str] = {}
    for n, (value, _, fate, notification_id) in enumerate(batch):
        if notification_id and fate in ("processed", "outage first"):
            processed[notification_id] += 1
        elif fate == "decode raises":
            dead_letters[str(n).encode()] = f"KeyError: {notification_id!r}"
        elif fate == "handle raises":
            dead_letters[str(n).encode()] = f"ZeroDivisionError: cannot handle {notification_id}"
        else:
            try:
                processed[decode_notification_ready(record_of(value)).notification_id] += 1
            except InvalidEvent as error:  # as long as the decoder says it, up to the header's bound
                dead_letters[str(n).encode()] = reason_header(str(error)).decode()
    assert fated.processed == processed
    dead = await read(settings, topics.dead_letter(TOPIC), len(dead_letters))
    assert {record.key: dict(record.headers)["dlq.reason"].decode() for record in dead} == dead_letters
    assert len(dead) == len(dead_letters)
    assert all(dict(record.headers)["dlq.source"].startswith(f"{settings.topic(TOPIC)}/".encode()) for record in dead)


def record_of(value: bytes) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, 0, 0, 0, None, value, None, 0, len(value), ())


async def test_records_the_client_cannot_parse_are_dead_lettered_and_hide_no_others(
    stack_settings: StackSettings,
) -> None:
    """A header key that is not UTF-8 made every getmany() raise, for ever; the records
    fetched with it (before it in its partition, and in other partitions) never came."""
    settings = stack_settings.model_copy(update={"batch_timeout_ms": 50})
    await stack.create_topics(settings, {TOPIC: 2})
    ids = [str(uuid.uuid4()) for _ in range(8)]
    await send_unparsable(settings, TOPIC, [valid(i) for i in ids[:5]], unparsable={2, 4}, partition=0)
    await send_unparsable(settings, TOPIC, [valid(i) for i in ids[5:]], unparsable={1}, partition=1)

    async def committed_past_everything(consumer: AIOKafkaConsumer) -> bool:
        partitions = {TopicPartition(settings.topic(TOPIC), p): end for p, end in ((0, 5), (1, 3))}
        return partitions.keys() <= consumer.assignment() and all(
            [await consumer.committed(tp) == end for tp, end in partitions.items()])

    fated = Fates({})
    await run_until(settings, fated, "unparsable-test", committed_past_everything)
    assert fated.processed == Counter({ids[n]: 1 for n in (0, 1, 3, 5, 7)})
    dead = await read(settings, topics.dead_letter(TOPIC), 3)
    assert sorted(dict(record.headers)["dlq.source"].decode() for record in dead) == [
        f"{settings.topic(TOPIC)}/0/2", f"{settings.topic(TOPIC)}/0/4", f"{settings.topic(TOPIC)}/1/1"]
    assert {dict(record.headers)["dlq.reason"].decode() for record in dead} == {
        "the Kafka client cannot parse it: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0:"
        " invalid start byte"}
