"""A static member that stops leaves its group (LeaveGroup v3), on the real broker."""

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from alerting.common import topics
from alerting.common.kafka import make_consumer, stop_consumer
from alerting.testsupport.stack import StackSettings


async def poll_until(consumers: list[AIOKafkaConsumer], condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` holds, polling every consumer meanwhile (which keeps it in its group)."""
    started = asyncio.get_running_loop().time()
    while not condition():
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed < timeout, f"{[sorted(c.assignment()) for c in consumers]} after {timeout} s"
        await asyncio.gather(*(consumer.getmany(timeout_ms=100) for consumer in consumers))
    return asyncio.get_running_loop().time() - started


async def test_a_static_member_that_stops_hands_its_partitions_over_at_once(stack_settings: StackSettings) -> None:
    """Without leaving, its partitions would wait out the session timeout (30 s here)."""
    settings = stack_settings.model_copy(update={"consumer_session_timeout_ms": 30_000})
    first = make_consumer(settings.model_copy(update={"instance_id": "a"}), "static", topics.ALERTS_NEW)
    second = make_consumer(settings.model_copy(update={"instance_id": "b"}), "static", topics.ALERTS_NEW)
    await first.start()
    await second.start()
    try:
        await poll_until([first, second], lambda: bool(first.assignment()) and bool(second.assignment())
                         and len(first.assignment() | second.assignment()) == 3, 30)
        await stop_consumer(first)
        assert await poll_until([second], lambda: len(second.assignment()) == 3, 30) < 8
    finally:
        await second.stop()
