"""The batch loop on the real broker: dead letters, retries, commits, lag and readiness."""

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from alerting.common import topics
from alerting.common.kafka import (
    BatchWorker,
    Delivery,
    InvalidEvent,
    OutgoingMessage,
    make_consumer,
    make_producer,
    publish_all,
    start_clients,
    stop_consumer,
)
from alerting.common.service import Lifecycle
from alerting.common.settings import Settings
from alerting.common.telemetry import serve_metrics_and_health
from alerting.testsupport.services import free_port, http_get, wait_until
from alerting.v1 import alert_pb2, events_pb2


def alert_new(alert_id: str) -> events_pb2.AlertNew:
    return events_pb2.AlertNew(
        schema_version=topics.SCHEMA_VERSION,
        alert=alert_pb2.Alert(alert_id=alert_id, severity=alert_pb2.SEVERITY_HIGH, source="db", name="disk"),
    )


async def committed_offset(settings: Settings, group: str, topic: str) -> int:
    consumer = make_consumer(settings, group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(settings.topic(topic), 0)) or 0
    finally:
        await consumer.stop()


def decode_alert(record: ConsumerRecord) -> events_pb2.AlertNew:
    try:
        event = events_pb2.AlertNew.FromString(record.value)
    except Exception as error:
        raise InvalidEvent(f"undecodable AlertNew: {error}") from error
    if not event.alert.alert_id:
        raise InvalidEvent("alert.alert_id: missing")
    return event


async def run_worker_until(
    settings: Settings,
    handle: Callable[[list[Delivery[events_pb2.AlertNew]]], Awaitable[None]],
    done: asyncio.Event,
    group: str = "worker-test",
) -> None:
    stop = asyncio.Event()
    consumer = make_consumer(settings, group, topics.RULE_CHANGED)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    worker = BatchWorker(
        service="test",
        settings=settings,
        consumer=consumer,
        producer=producer,
        decode=decode_alert,
        handle=handle,
        stop=stop,
    )
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await producer.stop()


async def produce(settings: Settings, values: list[bytes]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        # rule.changed is compacted: the broker refuses messages without a key.
        await publish_all(producer, [OutgoingMessage(settings.topic(topics.RULE_CHANGED), v, key=b"k") for v in values])
    finally:
        await producer.stop()


async def test_worker_dead_letters_invalid_events_with_the_reason_and_commits_after_handling(
    stack_settings: Settings,
) -> None:
    await produce(
        stack_settings,
        [alert_new("good-1").SerializeToString(), b"\xff\xfe not protobuf", alert_new("").SerializeToString(),
         alert_new("good-2").SerializeToString()],
    )
    handled: list[str] = []
    done = asyncio.Event()

    async def handle(deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        handled.extend(d.message.alert.alert_id for d in deliveries)
        if len(handled) >= 2:
            done.set()

    await run_worker_until(stack_settings, handle, done)
    assert handled == ["good-1", "good-2"]
    assert await committed_offset(stack_settings, "worker-test", topics.RULE_CHANGED) == 4

    dlq = make_consumer(stack_settings, "dlq-reader", topics.dead_letter(topics.RULE_CHANGED))
    await dlq.start()
    try:
        reasons: list[str] = []
        while len(reasons) < 2:
            batch = await dlq.getmany(timeout_ms=10000)
            assert batch, "dead letters missing"
            reasons += [dict(r.headers)["dlq.reason"].decode() for rs in batch.values() for r in rs]
    finally:
        await dlq.stop()
    assert reasons[0].startswith("undecodable AlertNew")
    assert reasons[1] == "alert.alert_id: missing"


async def test_worker_retries_a_failing_batch_and_commits_nothing_until_it_succeeds(stack_settings: Settings) -> None:
    await produce(stack_settings, [alert_new("only").SerializeToString()])
    attempts = 0
    done = asyncio.Event()
    offsets_seen_while_failing: list[int] = []

    async def handle(deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            offsets_seen_while_failing.append(
                await committed_offset(stack_settings, "retry-test", topics.RULE_CHANGED)
            )
            raise ConnectionError("dependency down")
        done.set()

    await run_worker_until(stack_settings, handle, done, group="retry-test")
    assert attempts == 3
    assert offsets_seen_while_failing == [0, 0]
    assert await committed_offset(stack_settings, "retry-test", topics.RULE_CHANGED) == 1


def lag_series(service: str, topic: str) -> dict[int, float]:
    """The consumer lag gauges a worker of `service` reports on `topic`, by partition."""
    return {
        int(sample.labels["partition"]): sample.value
        for family in REGISTRY.collect() if family.name == "alerting_consumer_lag"
        for sample in family.samples
        if sample.labels["service"] == service and sample.labels["topic"] == topic
    }


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    async def check() -> bool:
        return condition()

    await wait_until(check, timeout, what)


async def test_lag_is_measured_on_a_timer_and_dropped_for_partitions_a_worker_no_longer_owns(
    stack_settings: Settings,
) -> None:
    settings = stack_settings.model_copy(update={"consumer_lag_interval_seconds": 0.2})
    topic = settings.topic(topics.ALERTS_NEW)  # 3 partitions
    producer = make_producer(settings)
    await producer.start()
    try:
        for partition, count in enumerate((2, 3, 4)):
            for number in range(count):
                await producer.send_and_wait(topic, alert_new(f"p{partition}-{number}").SerializeToString(),
                                             partition=partition)
    finally:
        await producer.stop()

    dependency_up = asyncio.Event()

    async def handle(deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        if not dependency_up.is_set():
            raise ConnectionError("dependency down")

    def worker(service: str, stop: asyncio.Event) -> BatchWorker[events_pb2.AlertNew]:
        consumer = make_consumer(settings, "lag", topics.ALERTS_NEW)
        return BatchWorker(service=service, settings=settings, consumer=consumer, producer=make_producer(settings),
                           decode=decode_alert, handle=handle, stop=stop)

    first, second = worker("lag-a", asyncio.Event()), worker("lag-b", asyncio.Event())
    await start_clients(settings, first.consumer, first.producer)
    first_run = asyncio.create_task(first.run())
    second_run: asyncio.Task[None] | None = None
    try:
        # Alone, and its first batch failing: nothing is committed, and the timer still measures
        # the lag (from the log start, no commit yet), which no commit would have updated.
        await until(lambda: lag_series("lag-a", topic) == {0: 2, 1: 3, 2: 4}, 20, "lag of every partition")
        assert not first.ready() and first.broker_reachable
        dependency_up.set()
        await until(lambda: lag_series("lag-a", topic) == {0: 0, 1: 0, 2: 0}, 20, "no lag once committed")
        assert first.ready()

        # A second member joins: each reports exactly the partitions it owns now.
        await start_clients(settings, second.consumer, second.producer)
        second_run = asyncio.create_task(second.run())

        def shared() -> bool:
            mine, theirs = first.consumer.assignment(), second.consumer.assignment()
            return (bool(mine) and bool(theirs) and len(mine | theirs) == 3
                    and lag_series("lag-a", topic) == {tp.partition: 0 for tp in mine}
                    and lag_series("lag-b", topic) == {tp.partition: 0 for tp in theirs})

        await until(shared, 30, "the partitions shared, each reported by its owner only")
        assert set(lag_series("lag-a", topic)).isdisjoint(lag_series("lag-b", topic))

        # The second stops: its series go with it, and the first reports every partition again.
        second.stop_requested.set()
        await asyncio.wait_for(second_run, 30)
        assert lag_series("lag-b", topic) == {}
        await stop_consumer(second.consumer)
        await until(lambda: lag_series("lag-a", topic) == {0: 0, 1: 0, 2: 0}, 30, "the first owning all again")
        assert lag_series("lag-b", topic) == {}
    finally:
        first.stop_requested.set()
        second.stop_requested.set()
        await asyncio.wait_for(first_run, 30)
        if second_run is not None:
            await asyncio.wait_for(second_run, 30)
        for client in (first.consumer, second.consumer):
            await stop_consumer(client)
        for client in (first.producer, second.producer):
            await client.stop()
    assert lag_series("lag-a", topic) == {}


async def test_a_worker_retrying_a_failing_batch_is_unready_but_alive(stack_settings: Settings) -> None:
    """Served as a service serves it: /readyz 503 and /livez 200 while the batch fails."""
    await produce(stack_settings, [alert_new("only").SerializeToString()])
    dependency_up = asyncio.Event()
    handled = asyncio.Event()

    async def handle(deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        if not dependency_up.is_set():
            raise ConnectionError("dependency down")
        handled.set()

    lifecycle = Lifecycle()
    consumer, producer = make_consumer(stack_settings, "ready-test", topics.RULE_CHANGED), make_producer(stack_settings)
    await start_clients(stack_settings, producer, consumer)
    worker = BatchWorker(service="ready-test", settings=stack_settings, consumer=consumer, producer=producer,
                         decode=decode_alert, handle=handle, stop=lifecycle.stop)
    lifecycle.ready = worker.ready
    port = free_port()
    server = await serve_metrics_and_health("127.0.0.1", port, lifecycle.is_ready, lifecycle.is_alive)
    task = asyncio.create_task(worker.run())
    try:
        assert (await http_get(port, "/readyz"))[0] == 200  # started, nothing failing yet

        async def failing() -> bool:
            return (await http_get(port, "/readyz"))[0] == 503

        await wait_until(failing, 20, "the worker to be unready while its batch fails")
        assert await http_get(port, "/livez") == (200, "ok\n")
        assert await http_get(port, "/healthz") == (503, "not ready\n")
        dependency_up.set()
        await asyncio.wait_for(handled.wait(), 20)

        async def recovered() -> bool:
            return (await http_get(port, "/readyz"))[0] == 200

        await wait_until(recovered, 20, "the worker to be ready again")
    finally:
        lifecycle.stop.set()
        await asyncio.wait_for(task, 30)
        server.close()
        await stop_consumer(consumer)
        await producer.stop()
