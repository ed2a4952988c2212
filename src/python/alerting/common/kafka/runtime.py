"""`run_worker()`: a worker service's run, from its Kafka clients' start to its stop, with
the loop (worker.py) and the work beside it, so that each service's main.py wires only its
handler and its companions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord

from alerting.common.kafka.clients import worker_clients
from alerting.common.kafka.middleware import worker_middlewares
from alerting.common.kafka.worker import BatchWorker, Handler
from alerting.common.service import Lifecycle
from alerting.common.settings import WorkerSettings
from alerting.common.topics import Subscription

M = TypeVar("M")


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Companion:
    """Work a worker does beside its loop: `start` once its Kafka clients have started and
    before the loop, then `run` until the stop event is set. `ready` says, while it runs,
    whether the worker may take work. Ending before the stop is a fault: a companion that
    `stops_worker` stops the worker, which then raises the companion's error; any other
    leaves the worker neither ready nor alive, for a restart to mend."""

    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    start: Callable[[asyncio.Event], Awaitable[None]] | None = None
    ready: Callable[[], bool] = _always
    stops_worker: bool = False


@dataclass(frozen=True)
class Wiring(Generic[M]):
    """What a worker runs with its Kafka clients: the handler of its batches, which must make
    durable progress or raise, and its companions."""

    handle: Handler[M]
    companions: Sequence[Companion] = ()


async def run_worker(
    settings: WorkerSettings,
    lifecycle: Lifecycle,
    subscription: Subscription,
    decode: Callable[[ConsumerRecord], M],
    wire: Callable[[AIOKafkaProducer], Wiring[M]],
    closing: Sequence[Callable[[], Awaitable[None]]] = (),
) -> None:
    """Consume the subscription's topic until `lifecycle.stop` is set: the clients started
    (waiting for the broker), `wire` given the producer (for the handler's outputs; dead
    letters go through it too), the batch loop with every worker's middlewares and the
    companions beside it, served as the lifecycle's ready and alive probes. On the way out
    the companions are awaited, the consumer leaves its group, and then `closing` closes,
    in order, what the service opened for its handler (whether the worker ran or not)."""
    try:
        await _run(settings, lifecycle, subscription, decode, wire)
    finally:
        for close in closing:
            await close()


async def _run(settings: WorkerSettings, lifecycle: Lifecycle, subscription: Subscription,
               decode: Callable[[ConsumerRecord], M], wire: Callable[[AIOKafkaProducer], Wiring[M]]) -> None:
    async with worker_clients(settings, subscription.group, subscription.topic, lifecycle.stop) as (
        consumer, producer
    ):
        wiring = wire(producer)
        worker = BatchWorker(
            settings=settings, consumer=consumer, producer=producer, handle=wiring.handle,
            middlewares=worker_middlewares(subscription.service, settings, consumer, decode),
            stop=lifecycle.stop, service=subscription.service,
        )
        for companion in wiring.companions:
            if companion.start is not None:
                await companion.start(lifecycle.stop)
        running = [(companion, asyncio.create_task(companion.run(lifecycle.stop))) for companion in wiring.companions]
        for companion, task in running:
            if companion.stops_worker:
                task.add_done_callback(lambda _: lifecycle.stop.set())
        lifecycle.ready = lambda: worker.ready() and all(
            companion.ready() and not task.done() for companion, task in running)
        lifecycle.alive = lambda: not any(task.done() for companion, task in running if not companion.stops_worker)
        try:
            await worker.run()
        finally:
            lifecycle.stop.set()
            await asyncio.gather(*(task for _, task in running))
