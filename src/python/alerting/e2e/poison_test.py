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
from alerting.common.settings import Settings
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.sender.delivery import NEEDS_SMTPUTF8
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.services import fetch, free_port, rule_service_stub, running, wait_until
from alerting.v1 import rule_service_pb2

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


async def test_thousands_of_alerts_with_poison_tenants(stack_settings: Settings, tmp_path: Path) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink(
        "127.0.0.1", smtp_port, tmp_path,
        rcpt_replies={"gone@x.io": "550 5.1.1 no such user", "busy@x.io": "450 4.2.1 mailbox busy"},
        data_replies={"filtered@x.io": "554 5.7.1 content rejected"}, smtputf8=False)
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20})
    sender_settings = alerting.sender.main.SenderSettings(**{
        **settings.model_dump(), "delivery_retry_initial_seconds": 0.5, "delivery_retry_max_seconds": 2,
        "delivery_max_age_seconds": MAX_AGE_SECONDS, "retry_poll_seconds": 0.2})
    try:
        async with rule_service_stub(settings) as stub, AsyncExitStack() as workers:
            tenants = {}
            for name, email in [(f"good-{n}", f"oncall@good-{n}.io") for n in range(GOOD_TENANTS)] + [
                    (name, email) for name, (email, _) in POISON.items()]:
                client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=name))
                tenants[client.client_id] = name
                # Every tenant watches the same source: each alert notifies all twenty.
                await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity="*", source="shared", name="*", emails=[email]))
            for worker in (
                running(alerting.rule_updater.main.run, settings),
                running(alerting.evaluator.main.run, settings),
                running(alerting.aggregator.main.run,
                        alerting.aggregator.main.AggregatorSettings(**settings.model_dump())),
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
