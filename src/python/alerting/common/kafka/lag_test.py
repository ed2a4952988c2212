"""The consumer lag gauges on the real broker: measured on a timer and after commits, and
reported by the member that owns each partition only."""

import asyncio
from collections.abc import Callable

from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY

from alerting.common import topics
from alerting.common.kafka import make_consumer, make_producer, start_clients, stop_consumer
from alerting.common.kafka.middleware import worker_middlewares
from alerting.common.kafka.worker import BatchWorker, Delivery
from alerting.testsupport.services import wait_until
from alerting.testsupport.stack import StackSettings


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
    stack_settings: StackSettings,
) -> None:
    settings = stack_settings.model_copy(update={"consumer_lag_interval_seconds": 0.2})
    topic = settings.topic(topics.ALERTS_NEW)  # 3 partitions
    producer = make_producer(settings)
    await producer.start()
    try:
        for partition, count in enumerate((2, 3, 4)):
            for number in range(count):
                await producer.send_and_wait(topic, f"p{partition}-{number}".encode(), partition=partition)
    finally:
        await producer.stop()

    dependency_up = asyncio.Event()

    async def handle(deliveries: list[Delivery[ConsumerRecord]]) -> None:
        if not dependency_up.is_set():
            raise ConnectionError("dependency down")

    def worker(service: str, stop: asyncio.Event) -> BatchWorker[ConsumerRecord]:
        consumer = make_consumer(settings, "lag", topics.ALERTS_NEW)
        return BatchWorker(settings=settings, consumer=consumer, producer=make_producer(settings), handle=handle,
                           middlewares=worker_middlewares(service, settings, consumer, lambda record: record),
                           stop=stop, service=service)

    first, second = worker("lag-a", asyncio.Event()), worker("lag-b", asyncio.Event())
    await start_clients(settings, first.consumer, first.producer)
    first_run = asyncio.create_task(first.run())
    second_run: asyncio.Task[None] | None = None
    try:
        # Alone, and its first batch failing: nothing is committed, and the timer still measures
        # the lag (from the log start, no commit yet), which no commit would have updated.
        await until(lambda: lag_series("lag-a", topic) == {0: 2, 1: 3, 2: 4}, 20, "lag of every partition")
        assert not first.ready() and not first.last_batch_ok  # the batch, not the broker
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
        second.stop.set()
        await asyncio.wait_for(second_run, 30)
        assert lag_series("lag-b", topic) == {}
        await stop_consumer(second.consumer)
        await until(lambda: lag_series("lag-a", topic) == {0: 0, 1: 0, 2: 0}, 30, "the first owning all again")
        assert lag_series("lag-b", topic) == {}
    finally:
        first.stop.set()
        second.stop.set()
        await asyncio.wait_for(first_run, 30)
        if second_run is not None:
            await asyncio.wait_for(second_run, 30)
        for client in (first.consumer, second.consumer):
            await stop_consumer(client)
        for client in (first.producer, second.producer):
            await client.stop()
    assert lag_series("lag-a", topic) == {}
