"""The platform's Kafka clients on the real broker: manual commits, and a start that waits
for a broker not reachable yet."""

import asyncio

from aiokafka import TopicPartition

from alerting.common import topics
from alerting.common.kafka import (
    OutgoingMessage,
    make_consumer,
    make_producer,
    publish_all,
    start_clients,
    stop_consumer,
)
from alerting.testsupport.services import forward_port, free_port
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.strategies import alert_new
from alerting.v1 import alert_pb2, events_pb2


async def test_protobuf_event_round_trips_through_the_broker_with_manual_commits(stack_settings: StackSettings) -> None:
    topic = stack_settings.topic(topics.RULE_CHANGED)  # one partition: order is total
    producer = make_producer(stack_settings)
    await producer.start()
    try:
        values = [alert_new(alert_pb2.Alert(alert_id=f"a{i}")).SerializeToString() for i in range(4)]
        await publish_all(producer, [OutgoingMessage(topic, value, key=b"k") for value in values])
    finally:
        await producer.stop()

    first = make_consumer(stack_settings, "round-trip", topics.RULE_CHANGED)
    await first.start()
    try:
        batch = await first.getmany(timeout_ms=10000, max_records=2)
        records = [record for records in batch.values() for record in records]
        assert [events_pb2.AlertNew.FromString(r.value).alert.alert_id for r in records] == ["a0", "a1"]
        await first.commit({TopicPartition(topic, 0): records[-1].offset + 1})
    finally:
        await stop_consumer(first)

    # The group resumes after the committed offset: nothing before it, nothing skipped.
    second = make_consumer(stack_settings, "round-trip", topics.RULE_CHANGED)
    await second.start()
    try:
        seen: list[str] = []
        while len(seen) < 2:
            batch = await second.getmany(timeout_ms=10000)
            assert batch, "no message after the committed offset"
            seen += [events_pb2.AlertNew.FromString(r.value).alert.alert_id for rs in batch.values() for r in rs]
        assert seen == ["a2", "a3"]
    finally:
        await second.stop()


async def test_clients_started_before_the_broker_is_reachable_wait_for_it(stack_settings: StackSettings) -> None:
    """A service that starts during a Kafka outage retries instead of dying: here the
    bootstrap address only starts forwarding to the broker after a while."""
    listen_port = free_port()
    settings = stack_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{listen_port}"})
    producer = make_producer(settings, request_timeout_ms=2000)
    starting = asyncio.create_task(start_clients(settings, producer))
    await asyncio.sleep(1.5)
    assert not starting.done(), "start_clients gave up (or connected to nothing)"

    proxy = await forward_port(listen_port, stack_settings.kafka_bootstrap)
    try:
        await asyncio.wait_for(starting, 30)
        message = OutgoingMessage(settings.topic(topics.RULE_CHANGED), b"after the outage", key=b"k")
        await publish_all(producer, [message])
    finally:
        await producer.stop()
        proxy.close()
