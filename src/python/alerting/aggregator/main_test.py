"""The aggregator's dedupe boundary and its no-row-left-PENDING guarantees, on the real stack."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError

import alerting.aggregator.main
from alerting.aggregator.recorder import sweep_forever
from alerting.common import topics
from alerting.common.retry import Stopping
from alerting.common.service import Lifecycle
from alerting.common.settings import AggregatorSettings
from alerting.producer.alerts import build_alert
from alerting.testsupport import stack
from alerting.testsupport.services import fetch, free_port, read, running, send, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, events_pb2


def matched(client_id: str, alert: alert_pb2.Alert, rule_ids: list[str] | None = None) -> bytes:
    return events_pb2.AlertMatched(schema_version=1, client_id=client_id, alert=alert,
                                   rule_ids=rule_ids or [str(uuid.uuid4())], emails=["ops@x.io"]).SerializeToString()


def settings_of(stack_settings: StackSettings, **overrides: Any) -> alerting.aggregator.main.AggregatorSettings:
    return AggregatorSettings(**{**stack_settings.model_dump(), **overrides})


async def rows(settings: StackSettings) -> list[asyncpg.Record]:
    return await fetch(settings, "SELECT notification_id::text, client_id::text, alert_id, status FROM notifications")


async def single_partition(settings: StackSettings) -> StackSettings:
    """The same slice of the stack with one-partition topics: records are consumed in the order sent."""
    settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}single."})
    await stack.create_topics(settings, {topics.ALERTS_MATCHED: 1, topics.NOTIFICATIONS_READY: 1})
    return settings


async def has_rows(settings: StackSettings, count: int) -> bool:
    return len(await rows(settings)) >= count


async def test_duplicate_alerts_and_redeliveries_make_one_notification(stack_settings: StackSettings) -> None:
    client_id, alert = str(uuid.uuid4()), build_alert("HIGH", "db", "disk")
    other_client = str(uuid.uuid4())
    async with running(alerting.aggregator.main.run, settings_of(stack_settings)):
        # The same (client, alert) three times, one in the same batch, and a second client.
        await send(stack_settings, topics.ALERTS_MATCHED, [matched(client_id, alert)] * 2)
        await send(stack_settings, topics.ALERTS_MATCHED, [matched(client_id, alert), matched(other_client, alert)])
        await wait_until(lambda: has_rows(stack_settings, 2), 30, "two notifications")
    # Stopped gracefully, so all it consumed is published: at least one message per row, more
    # when the four messages fell into several batches (a batch that meets a still-PENDING row
    # publishes it again; the sender dedupes).
    ready = await read(stack_settings, topics.NOTIFICATIONS_READY, 2)
    found = await rows(stack_settings)
    assert sorted(r["client_id"] for r in found) == sorted([client_id, other_client])
    # Whatever was published names the two rows, never a third.
    ids = {events_pb2.NotificationReady.FromString(r.value).notification_id for r in ready}
    assert ids == {r["notification_id"] for r in found}


async def test_a_redelivered_batch_publishes_pending_rows_again_but_not_sent_ones(
    stack_settings: StackSettings,
) -> None:
    pending_alert, sent_alert, client_id = build_alert("LOW", "a", "b"), build_alert("LOW", "c", "d"), str(uuid.uuid4())
    async with running(alerting.aggregator.main.run, settings_of(stack_settings)):
        both = [matched(client_id, pending_alert), matched(client_id, sent_alert)]
        await send(stack_settings, topics.ALERTS_MATCHED, both)
        await read(stack_settings, topics.NOTIFICATIONS_READY, 2)
        await fetch(stack_settings, "UPDATE notifications SET status = 'SENT' WHERE alert_id = $1", sent_alert.alert_id)
        # As after a crash between the insert and the publish: the same messages again.
        both = [matched(client_id, pending_alert), matched(client_id, sent_alert)]
        await send(stack_settings, topics.ALERTS_MATCHED, both)
        ready = await read(stack_settings, topics.NOTIFICATIONS_READY, 3)
    alert_ids = [events_pb2.NotificationReady.FromString(r.value).alert_id for r in ready]
    assert sorted(alert_ids) == sorted([pending_alert.alert_id, sent_alert.alert_id, pending_alert.alert_id])


async def test_the_sweeper_republishes_a_stranded_pending_row(stack_settings: StackSettings) -> None:
    client_id = str(uuid.uuid4())
    await fetch(stack_settings,
                "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, published_at)"
                " VALUES ($1, 'stranded', '{}', '{ops@x.io}', '', now() - interval '1 hour')", client_id)
    settings = settings_of(stack_settings, sweep_after_seconds=60, sweep_interval_seconds=0.2)
    async with running(alerting.aggregator.main.run, settings):
        [ready] = await read(stack_settings, topics.NOTIFICATIONS_READY, 1)
    assert events_pb2.NotificationReady.FromString(ready.value).alert_id == "stranded"
    [row] = await fetch(stack_settings, "SELECT published_at > now() - interval '1 minute' AS fresh FROM notifications")
    assert row["fresh"]


class FlakyRecorder:
    """Its first sweeps fail as a Kafka timeout and a bug would; the next one stops the sweeper."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.failures = [KafkaTimeoutError(), RuntimeError("a bug")]
        self.sweeps = 0

    async def sweep(self, after_seconds: float) -> int:
        self.sweeps += 1
        if self.failures:
            raise self.failures.pop(0)
        self.stop.set()
        return 0


async def test_the_sweeper_survives_any_failed_sweep_and_tries_again() -> None:
    stop = asyncio.Event()
    recorder = FlakyRecorder(stop)
    await asyncio.wait_for(sweep_forever(recorder, stop, interval_seconds=0.01, after_seconds=60), 10)
    assert recorder.sweeps == 3


async def test_an_aggregator_started_while_kafka_is_unreachable_waits_for_it(stack_settings: StackSettings) -> None:
    lifecycle = Lifecycle()
    settings = settings_of(stack_settings, kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens
    starting = asyncio.create_task(alerting.aggregator.main.run(settings, lifecycle))
    await asyncio.sleep(2)
    assert not starting.done(), "the aggregator gave up on Kafka"
    lifecycle.stop.set()
    with pytest.raises(Stopping):
        await asyncio.wait_for(starting, 30)


def with_alert_id(alert: alert_pb2.Alert, alert_id: str) -> alert_pb2.Alert:
    """An alert the producer would refuse, as an older or foreign producer may send it."""
    alert.alert_id = alert_id
    return alert


@pytest.mark.parametrize("bad, reason", [
    (matched("not-a-uuid", build_alert("HIGH", "x", "y")), b"client_id: not a UUID: 'not-a-uuid'"),
    # Postgres would refuse its insert on every redelivery: it must not stall the partition.
    (matched(str(uuid.uuid4()), with_alert_id(build_alert("HIGH", "x", "y"), "nul\x00id")),
     b"alert.alert_id: contains the control character U+0000"),
])
async def test_invalid_matches_are_dead_lettered_and_the_aggregator_keeps_going(
    stack_settings: StackSettings, bad: bytes, reason: bytes
) -> None:
    settings = await single_partition(stack_settings)  # the valid match comes after the bad one
    good = matched(str(uuid.uuid4()), build_alert("HIGH", "x", "y"))
    async with running(alerting.aggregator.main.run, settings_of(settings)):
        await send(settings, topics.ALERTS_MATCHED, [bad, good])
        [dead] = await read(settings, topics.dead_letter(topics.ALERTS_MATCHED), 1)
        await wait_until(lambda: _one_row(stack_settings), 30, "the valid notification")
    assert dict(dead.headers)["dlq.reason"] == reason
    assert dead.value == bad


async def _one_row(settings: StackSettings) -> bool:
    return len(await rows(settings)) == 1
