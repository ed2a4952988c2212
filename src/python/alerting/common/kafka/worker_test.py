"""The batch loop on the real broker: dead letters, retries, commits, lag and readiness."""

import asyncio

from aiokafka import ConsumerRecord, TopicPartition

from alerting.common import topics
from alerting.common.kafka import (
    Handler,
    InvalidEvent,
    Wiring,
    make_consumer,
    run_worker,
)
from alerting.common.kafka.worker import Delivery
from alerting.common.service import Lifecycle
from alerting.common.telemetry import serve_metrics_and_health
from alerting.common.topics import Subscription
from alerting.testsupport.services import free_port, http_get, read, send, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, events_pb2


def alert_new(alert_id: str) -> events_pb2.AlertNew:
    return events_pb2.AlertNew(
        schema_version=topics.SCHEMA_VERSION,
        alert=alert_pb2.Alert(alert_id=alert_id, severity=alert_pb2.SEVERITY_HIGH, source="db", name="disk"),
    )


async def committed_offset(settings: StackSettings, group: str, topic: str) -> int:
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
    settings: StackSettings, handle: Handler[events_pb2.AlertNew], done: asyncio.Event, group: str = "worker-test"
) -> None:
    """A worker of rule.changed in `group`, run until `done`, then stopped as SIGTERM stops one."""
    lifecycle = Lifecycle()
    subscription = Subscription("test", group, topics.RULE_CHANGED)
    running = asyncio.create_task(run_worker(settings, lifecycle, subscription, decode_alert, lambda _: Wiring(handle)))
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        lifecycle.stop.set()
        await asyncio.wait_for(running, 30)


async def produce(settings: StackSettings, values: list[bytes]) -> None:
    # rule.changed is compacted: the broker refuses messages without a key.
    await send(settings, topics.RULE_CHANGED, values, keys=[b"k"] * len(values))


async def test_worker_dead_letters_invalid_events_with_the_reason_and_commits_after_handling(
    stack_settings: StackSettings,
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

    reasons = [dict(record.headers)["dlq.reason"].decode()
               for record in await read(stack_settings, topics.dead_letter(topics.RULE_CHANGED), 2)]
    assert len(reasons) == 2
    assert reasons[0].startswith("undecodable AlertNew")
    assert reasons[1] == "alert.alert_id: missing"


async def test_worker_retries_a_failing_batch_and_commits_nothing_until_it_succeeds(
    stack_settings: StackSettings,
) -> None:
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


async def test_a_worker_retrying_a_failing_batch_is_unready_but_alive(stack_settings: StackSettings) -> None:
    """Served as a service serves it: /readyz 503 and /livez 200 while the batch fails."""
    await produce(stack_settings, [alert_new("only").SerializeToString()])
    handling, dependency_down, dependency_up, handled = (asyncio.Event() for _ in range(4))

    async def handle(deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        handling.set()
        await dependency_down.wait()
        if not dependency_up.is_set():
            raise ConnectionError("dependency down")
        handled.set()

    lifecycle = Lifecycle()
    port = free_port()
    server = await serve_metrics_and_health("127.0.0.1", port, lifecycle.is_ready, lifecycle.is_alive)
    subscription = Subscription("ready-test", "ready-test", topics.RULE_CHANGED)
    task = asyncio.create_task(run_worker(stack_settings, lifecycle, subscription, decode_alert,
                                          lambda _: Wiring(handle)))
    try:
        await asyncio.wait_for(handling.wait(), 20)
        assert (await http_get(port, "/readyz"))[0] == 200  # started, nothing failing yet
        dependency_down.set()

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
