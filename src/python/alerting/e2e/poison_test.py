"""Thousands of alerts for twenty tenants through every worker (in-process) on the real
stack, with a few tenants whose notifications can never be delivered, each in its own way:
every good notification is SENT and received once, every poison one FAILED with its reason,
and the poison ones never hold the others back."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import alerting.aggregator.main
import alerting.evaluator.main
import alerting.rule_updater.main
import alerting.sender.main
from alerting.common import topics
from alerting.common.settings import AggregatorSettings
from alerting.producer.alerts import alert_new, build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.sender.delivery import NEEDS_SMTPUTF8
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.services import (
    fetch,
    free_port,
    immediate_sender,
    read,
    rule_service_stub,
    running,
    send_unparsable,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.strategies import YEAR_10000
from alerting.v1 import events_pb2, rule_service_pb2

ALERTS = 300  # each notifies all twenty tenants: 6,000 notifications
GOOD_TENANTS = 16
# Tenant -> its only address, which cannot be delivered, and the failure it must end with.
POISON = {
    "no-such-user": ("gone@x.io", "gone@x.io: 550 5.1.1 no such user"),
    "content-refused": ("filtered@x.io", "554 5.7.1 content rejected"),
    "busy-forever": ("busy@x.io", "last answer: busy@x.io: 450 4.2.1 mailbox busy"),
    "needs-smtputf8": ("jösé@x.io", f"jösé@x.io: {NEEDS_SMTPUTF8}"),
}
# Long enough for every good notification to be SENT first even on a loaded machine.
MAX_AGE_SECONDS = 40


async def test_thousands_of_alerts_with_poison_tenants(stack_settings: StackSettings, tmp_path: Path) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink(
        "127.0.0.1", smtp_port, tmp_path,
        rcpt_replies={"gone@x.io": "550 5.1.1 no such user", "busy@x.io": "450 4.2.1 mailbox busy"},
        data_replies={"filtered@x.io": "554 5.7.1 content rejected"}, smtputf8=False)
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20})
    sender_settings = immediate_sender(settings, delivery_retry_initial_seconds=0.5, delivery_retry_max_seconds=2,
                                       delivery_max_age_seconds=MAX_AGE_SECONDS, retry_poll_seconds=0.2)
    try:
        async with rule_service_stub(settings) as stub, AsyncExitStack() as workers:
            tenants = {}
            for name, email in [(f"good-{n}", f"oncall@good-{n}.io") for n in range(GOOD_TENANTS)] + [
                    (name, email) for name, (email, _) in POISON.items()]:
                client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=name))
                tenants[client.client_id] = name
                await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                    client_id=client.client_id, source="shared"))
                # Every tenant watches the same source: each alert notifies all twenty.
                await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity="*", source="shared", name="*", emails=[email]))
            for worker in (
                running(alerting.rule_updater.main.run, settings),
                running(alerting.evaluator.main.run, settings),
                running(alerting.aggregator.main.run,
                        AggregatorSettings(**settings.model_dump())),
                running(alerting.sender.main.run, sender_settings),
            ):
                await workers.enter_async_context(worker)
            await asyncio.sleep(1)  # the rules travel outbox → rule.changed → evaluator
            async with AlertPublisher(settings) as publisher:
                for first in range(0, ALERTS, 50):
                    await publisher.publish([build_alert("HIGH", "shared", f"check-{n}")
                                             for n in range(first, first + 50)])
            expected = ALERTS * len(tenants)

            async def every_good_one_sent() -> bool:
                [row] = await fetch(settings, "SELECT count(*) AS sent FROM notifications WHERE status = 'SENT'")
                return row["sent"] == ALERTS * GOOD_TENANTS

            await wait_until(every_good_one_sent, 120, "every good notification SENT")
            # The good ones did not wait for the poison ones: those refused for now are still tried.
            [row] = await fetch(settings, "SELECT count(*) AS busy FROM notifications WHERE status = 'PENDING'")
            assert row["busy"] == ALERTS  # exactly the busy-forever tenant's

            async def nothing_pending() -> bool:
                [row] = await fetch(settings, "SELECT count(*) AS n FROM notifications WHERE status = 'PENDING'")
                return row["n"] == 0

            await wait_until(nothing_pending, 120, "the poison notifications decided")
            rows = await fetch(
                settings, "SELECT client_id::text, notification_id::text, status, failure FROM notifications")
    finally:
        sink.close()
    assert len(rows) == expected
    by_tenant: dict[str, Counter[tuple[str, str | None]]] = {}
    for row in rows:
        name = tenants[row["client_id"]]
        failure = row["failure"]
        reason = None if failure is None else next(
            (expected for _, expected in POISON.values() if failure.endswith(expected)), failure)
        by_tenant.setdefault(name, Counter())[(row["status"], reason)] += 1
    for name in tenants.values():
        if name in POISON:
            assert by_tenant[name] == Counter({("FAILED", POISON[name][1]): ALERTS}), name
        else:
            assert by_tenant[name] == Counter({("SENT", None): ALERTS}), name
    received = Counter(mail["Message-ID"] for mail in mailbox.read_all(tmp_path))
    sent = {f"<{row['notification_id']}@alerting.local>" for row in rows if row["status"] == "SENT"}
    assert received == Counter({message_id: 1 for message_id in sent})


async def test_the_year_10000_alert_and_other_garbage_are_dead_lettered_and_every_other_alert_is_sent(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    """The record that crash-looped the evaluator, byte for byte, among good alerts and other
    records no consumer can take: it and they end in alerts.new.dlq with their reasons."""
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path)
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20})
    year_10000 = build_alert("HIGH", "shared", "disk")
    year_10000.event_ts.seconds, year_10000.event_ts.nanos = YEAR_10000, 0
    garbage = {
        alert_new(year_10000).SerializeToString():
            "alert.event_ts: 253402387200 seconds since the epoch is out of range",
        b"\xff\xfe not protobuf": "undecodable AlertNew: Error parsing message with type 'alerting.v1.AlertNew'",
    }
    good = [build_alert("HIGH", "shared", f"check-{n}") for n in range(120)]
    try:
        async with rule_service_stub(settings) as stub, AsyncExitStack() as workers:
            client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name="acme"))
            await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                client_id=client.client_id, source="shared"))
            await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                client_id=client.client_id, severity="*", source="shared", name="*", emails=["oncall@acme.io"]))
            for worker in (
                running(alerting.rule_updater.main.run, settings),
                running(alerting.evaluator.main.run, settings),
                running(alerting.aggregator.main.run,
                        AggregatorSettings(**settings.model_dump())),
                running(alerting.sender.main.run, immediate_sender(settings)),
            ):
                await workers.enter_async_context(worker)
            await asyncio.sleep(1)  # the rule travels outbox → rule.changed → evaluator
            values = [alert_new(alert).SerializeToString() for alert in good]
            # The garbage among the good alerts, and one record the Kafka client cannot parse.
            for position, value in zip((10, 60), garbage, strict=True):
                values.insert(position, value)
            # A good alert, but with a header key the Kafka client cannot parse: dead-lettered too.
            await send_unparsable(settings, topics.ALERTS_NEW, values, unparsable={100})
            unparsed = values[100]

            async def every_good_one_sent() -> bool:
                [row] = await fetch(settings, "SELECT count(*) AS sent FROM notifications WHERE status = 'SENT'")
                return row["sent"] == len(good) - 1

            await wait_until(every_good_one_sent, 120, "every good alert's notification SENT")
            dead = await read(settings, topics.dead_letter(topics.ALERTS_NEW), 3)
            rows = await fetch(settings, "SELECT alert_id FROM notifications")
    finally:
        sink.close()
    reasons = {record.value: dict(record.headers)["dlq.reason"].decode() for record in dead}
    assert len(dead) == 3
    # Its bytes stay in alerts.new, at the offset its dlq.source names, for another client.
    assert reasons[b""].startswith("the Kafka client cannot parse it: UnicodeDecodeError")
    for value, reason in garbage.items():
        assert reasons[value].startswith(reason)
    sent = {alert.alert_id for alert in good} - {alert_new_id(unparsed)}
    assert sorted(row["alert_id"] for row in rows) == sorted(sent)


def alert_new_id(value: bytes) -> str:
    return events_pb2.AlertNew.FromString(value).alert.alert_id
