"""run_worker() on the real broker: the handler and the companions a service wires, the
probes it serves, and how a companion's end ends the worker or not."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import ConsumerRecord

from alerting.common import topics
from alerting.common.kafka import Companion, Delivery, Wiring, run_worker
from alerting.common.service import Lifecycle
from alerting.common.topics import Subscription
from alerting.testsupport.services import send, wait_until
from alerting.testsupport.stack import StackSettings

SUBSCRIPTION = Subscription("runtime-test", "runtime-test", topics.ALERTS_NEW)


def value(record: ConsumerRecord) -> bytes:
    return bytes(record.value or b"")


async def start_worker(settings: StackSettings, lifecycle: Lifecycle, companions: list[Companion]
                       ) -> tuple[asyncio.Task[None], Callable[[int], Awaitable[None]], list[bytes]]:
    """A worker of alerts.new with these companions, running; a function that sends that
    many records and waits until they are handled; what it handled."""
    handled: list[bytes] = []

    async def handle(deliveries: list[Delivery[bytes]]) -> None:
        handled.extend(delivery.message for delivery in deliveries)

    async def send_and_handle(count: int) -> None:
        expected = len(handled) + count
        await send(settings, topics.ALERTS_NEW, [f"r{n}".encode() for n in range(len(handled), expected)])

        async def all_handled() -> bool:
            return len(handled) >= expected

        await wait_until(all_handled, 30, f"{count} records handled")

    task = asyncio.create_task(run_worker(settings, lifecycle, SUBSCRIPTION, value,
                                          lambda _: Wiring(handle, companions)))
    return task, send_and_handle, handled


async def test_companions_start_before_the_loop_run_beside_it_and_are_awaited_at_the_stop(
    stack_settings: StackSettings,
) -> None:
    events: list[str] = []
    may_take_work = True

    async def start(stop: asyncio.Event) -> None:
        events.append("started")

    async def run(stop: asyncio.Event) -> None:
        events.append("running")
        await stop.wait()
        events.append("stopped")

    lifecycle = Lifecycle()
    task, send_and_handle, handled = await start_worker(stack_settings, lifecycle, [
        Companion(run, start=start, ready=lambda: may_take_work)])
    try:
        await send_and_handle(1)
        assert events == ["started", "running"]
        assert (lifecycle.is_ready(), lifecycle.is_alive()) == (True, True)
        may_take_work = False
        assert (lifecycle.is_ready(), lifecycle.is_alive()) == (False, True)
    finally:
        lifecycle.stop.set()
        await asyncio.wait_for(task, 30)
    assert events == ["started", "running", "stopped"]
    assert handled == [b"r0"]


async def test_a_companion_that_ends_early_leaves_the_worker_working_but_neither_ready_nor_alive(
    stack_settings: StackSettings,
) -> None:
    async def ends_at_once(stop: asyncio.Event) -> None:
        pass

    lifecycle = Lifecycle()
    task, send_and_handle, handled = await start_worker(stack_settings, lifecycle, [Companion(ends_at_once)])
    try:
        await send_and_handle(2)
        assert (lifecycle.is_ready(), lifecycle.is_alive()) == (False, False)
        assert not task.done()
    finally:
        lifecycle.stop.set()
        await asyncio.wait_for(task, 30)
    assert sorted(handled) == [b"r0", b"r1"]


async def test_a_companion_that_stops_the_worker_ends_its_run_with_the_companion_s_error(
    stack_settings: StackSettings,
) -> None:
    fail = asyncio.Event()

    async def fails_when_told(stop: asyncio.Event) -> None:
        await fail.wait()
        raise LookupError("the offset it needs is gone")

    lifecycle = Lifecycle()
    task, send_and_handle, _ = await start_worker(
        stack_settings, lifecycle, [Companion(fails_when_told, stops_worker=True)])
    await send_and_handle(1)
    fail.set()
    with pytest.raises(LookupError, match="the offset it needs is gone"):
        await asyncio.wait_for(task, 30)
    assert lifecycle.stop.is_set()
    assert lifecycle.is_alive()  # a stopping companion ends the process instead
