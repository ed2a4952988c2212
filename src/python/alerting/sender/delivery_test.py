"""Per-notification delivery against a real SMTP server (the sink, answering as told) and
the real database: each kind of undeliverable notification mixed into a flow of good
ones ends FAILED with its reason, alone; every good one is SENT, its email received once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from opentelemetry import context as otel_context

import alerting.sender.main
from alerting.common import topics
from alerting.common.settings import SenderSettings
from alerting.producer.alerts import build_alert
from alerting.sender.delivery import NEEDS_SMTPUTF8, QUEUED_PER_CONNECTION, EmailSender, Outgoing
from alerting.sender.outcomes import Decision
from alerting.sender.recorder import DecisionRecorder
from alerting.sender.smtp_pool import SmtpConnections
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import MailboxHandler, start_sink
from alerting.testsupport.services import fetch, free_port, immediate_sender, running, send, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2

RCPT_REPLIES = {"gone@x.io": "550 5.1.1 no such user", "busy@x.io": "450 4.2.1 mailbox busy"}
DATA_REPLIES = {"filtered@x.io": "554 5.7.1 content rejected"}


async def insert(settings: StackSettings, emails: Sequence[str], alert: bytes | None = None) -> str:
    [row] = await fetch(
        settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING notification_id::text",
        str(uuid.uuid4()), uuid.uuid4().hex, [str(uuid.uuid4())], list(emails),
        build_alert("HIGH", "db", "disk").SerializeToString() if alert is None else alert)
    return str(row["notification_id"])


def ready(notification_id: str) -> bytes:
    return events_pb2.NotificationReady(schema_version=1, notification_id=notification_id).SerializeToString()


def fast_retries(settings: StackSettings, port: int, max_age: float = 60) -> SenderSettings:
    return immediate_sender(settings, smtp_port=port, delivery_retry_initial_seconds=0.2,
                            delivery_retry_max_seconds=0.5, delivery_max_age_seconds=max_age, retry_poll_seconds=0.1)


async def states(settings: StackSettings, ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    rows = await fetch(settings, "SELECT notification_id::text, status, failure FROM notifications"
                                 " WHERE notification_id = ANY($1::uuid[])", list(ids))
    return {row["notification_id"]: (row["status"], row["failure"]) for row in rows}


async def recipients(settings: StackSettings, notification_id: str) -> dict[str, tuple[str, str]]:
    rows = await fetch(settings, "SELECT email, status, response FROM notification_recipients"
                                 " WHERE notification_id = $1", notification_id)
    return {row["email"]: (row["status"], row["response"]) for row in rows}


def received(directory: Path) -> Counter[str]:
    return Counter(mail["Message-ID"].strip("<>").split("@")[0] for mail in mailbox.read_all(directory))


async def test_poison_notifications_fail_alone_and_every_good_one_is_sent_once(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    port = free_port()
    sink, _ = await start_sink("127.0.0.1", port, tmp_path, rcpt_replies=RCPT_REPLIES, data_replies=DATA_REPLIES,
                               smtputf8=False)
    good = [await insert(stack_settings, [f"good-{n}@x.io", f"also-{n}@x.io"]) for n in range(40)]
    poison = {
        "unrenderable": await insert(stack_settings, ["a@x.io"], alert=b"\xff\xff not an alert"),
        "needs SMTPUTF8": await insert(stack_settings, ["jösé@x.io"]),
        "no such user": await insert(stack_settings, ["gone@x.io"]),
        "content rejected": await insert(stack_settings, ["filtered@x.io"]),
        "busy forever": await insert(stack_settings, ["busy@x.io"]),
    }
    partial = await insert(stack_settings, ["reader@x.io", "gone@x.io"])
    mixed = good[:20] + list(poison.values()) + [partial] + good[20:]
    try:
        async with running(alerting.sender.main.run, fast_retries(stack_settings, port, max_age=15)):
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(n) for n in mixed])

            async def good_ones_sent() -> bool:
                return {status for status, _ in (await states(stack_settings, good + [partial])).values()} == {"SENT"}

            await wait_until(good_ones_sent, 30, "every good notification SENT")
            # ... while the one that is only refused for now is still being tried.
            assert (await states(stack_settings, [poison["busy forever"]]))[poison["busy forever"]][0] == "PENDING"

            async def poison_decided() -> bool:
                decided = await states(stack_settings, list(poison.values()))
                return all(status == "FAILED" for status, _ in decided.values())

            await wait_until(poison_decided, 60, "every poison notification FAILED")
    finally:
        sink.close()
    failures = await states(stack_settings, list(poison.values()))
    unrenderable = failures[poison["unrenderable"]][1]
    assert unrenderable is not None and unrenderable.startswith("cannot render the email: DecodeError")
    assert failures[poison["needs SMTPUTF8"]][1] == f"jösé@x.io: {NEEDS_SMTPUTF8}"
    assert failures[poison["no such user"]][1] == "gone@x.io: 550 5.1.1 no such user"
    assert failures[poison["content rejected"]][1] == "554 5.7.1 content rejected"
    busy = failures[poison["busy forever"]][1]
    assert busy is not None and busy.startswith("undeliverable for 0:00:15 (") and busy.endswith(
        "last answer: busy@x.io: 450 4.2.1 mailbox busy")
    assert await recipients(stack_settings, partial) == {
        "reader@x.io": ("SENT", "250 Message accepted for delivery"),
        "gone@x.io": ("FAILED", "550 5.1.1 no such user"),
    }
    assert received(tmp_path) == Counter({notification: 1 for notification in good + [partial]})


async def test_a_recipient_refused_for_now_is_retried_alone_until_accepted(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    port = free_port()
    sink, handler = await start_sink("127.0.0.1", port, tmp_path, rcpt_replies={"later@x.io": "451 4.3.0 try later"})
    notification = await insert(stack_settings, ["now@x.io", "later@x.io"])
    try:
        async with running(alerting.sender.main.run, fast_retries(stack_settings, port)):
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(notification)])

            async def deferred() -> bool:
                outcomes = await recipients(stack_settings, notification)
                return outcomes.get("later@x.io", ("", ""))[0] == "DEFERRED"

            await wait_until(deferred, 30, "later@x.io DEFERRED")
            await asyncio.sleep(1)  # a few more refusals
            handler.rcpt_replies.clear()  # the server takes it now

            async def sent() -> bool:
                return (await states(stack_settings, [notification]))[notification][0] == "SENT"

            await wait_until(sent, 30, "SENT once later@x.io accepts")
    finally:
        sink.close()
    outcomes = await recipients(stack_settings, notification)
    assert {email: status for email, (status, _) in outcomes.items()} == {"now@x.io": "SENT", "later@x.io": "SENT"}
    deliveries = [mail["Delivered-To"] for mail in mailbox.read_all(tmp_path)]
    assert sorted(deliveries) == ["later@x.io", "now@x.io"]  # now@x.io received it once, not at every retry


async def test_an_address_that_needs_smtputf8_is_sent_when_the_server_offers_it(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    port = free_port()
    sink, _ = await start_sink("127.0.0.1", port, tmp_path, smtputf8=True)
    notification = await insert(stack_settings, ["jösé@exämple.com"])
    try:
        async with running(alerting.sender.main.run, fast_retries(stack_settings, port)):
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(notification)])

            async def sent() -> bool:
                return (await states(stack_settings, [notification]))[notification][0] == "SENT"

            await wait_until(sent, 30, "SENT over SMTPUTF8")
    finally:
        sink.close()
    [mail] = mailbox.read_all(tmp_path)
    assert mail["Delivered-To"] == "jösé@exämple.com"


class HeldMessages(MailboxHandler):
    """The sink, holding each message until the test lets it through."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.let_through = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.let_through.wait()
        return await super().handle_DATA(server, session, envelope)


def outgoing(notification_id: str) -> Outgoing[str]:
    return Outgoing(notification_id, "notification", notification_id, ("ops@x.io",), {}, 1, datetime.now(UTC),
                    lambda addresses: b"Subject: held\r\n\r\nbody\r\n", otel_context.Context())


async def test_handing_emails_over_returns_once_they_are_queued_and_waits_while_the_queue_is_full(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    """A batch is done when its emails are queued for the connections, not sent; a full
    queue holds the next batch back; closing sends and records everything handed over."""
    handler = HeldMessages(tmp_path)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="alerting.local"), "127.0.0.1", 0)
    settings = immediate_sender(stack_settings, smtp_port=server.sockets[0].getsockname()[1], smtp_connections=1)
    written: list[tuple[str, str]] = []

    async def write(decided: Sequence[tuple[str, Decision]]) -> None:
        written.extend((notification_id, decision.status.value) for notification_id, decision in decided)

    recorder: DecisionRecorder[str] = DecisionRecorder(write, str)
    sender = EmailSender(settings, SmtpConnections(host="127.0.0.1", port=settings.smtp_port, timeout=5,
                                                   start_tls=False, username="", password=""))
    async with server:
        # One email on the connection (held at DATA) and QUEUED_PER_CONNECTION waiting: handed over.
        await asyncio.wait_for(sender.deliver([outgoing(f"n{n}") for n in range(1 + QUEUED_PER_CONNECTION)],
                                              recorder), 5)
        assert written == [] and handler.received == 0
        # One more finds the queue full: it waits.
        more = asyncio.create_task(sender.deliver([outgoing("last")], recorder))
        await asyncio.sleep(0.5)
        assert not more.done()
        handler.let_through.set()
        await asyncio.wait_for(more, 10)
        await sender.aclose()
    ids = [f"n{n}" for n in range(1 + QUEUED_PER_CONNECTION)] + ["last"]
    assert written == [(notification_id, "SENT") for notification_id in ids]
    assert [mail["Delivered-To"] for mail in mailbox.read_all(tmp_path)] == ["ops@x.io"] * len(ids)
