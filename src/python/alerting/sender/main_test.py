"""The sender against a real SMTP server (the sink) and the real database."""

import asyncio
import uuid
from collections.abc import Iterable
from pathlib import Path

import alerting.sender.main
from alerting.common import topics
from alerting.common.settings import SenderSettings
from alerting.producer.alerts import build_alert
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.services import fetch, free_port, immediate_sender, running, send, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2


async def pending_row(
    settings: StackSettings, alert_id: str = "a1", emails: Iterable[str] = ("ops@x.io", "dev@x.io")
) -> str:
    [row] = await fetch(
        settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING notification_id::text",
        str(uuid.uuid4()), alert_id, [str(uuid.uuid4())], list(emails),
        build_alert("CRITICAL", "db", "down").SerializeToString())
    return row["notification_id"]


def ready(notification_id: str) -> bytes:
    return events_pb2.NotificationReady(schema_version=1, notification_id=notification_id).SerializeToString()


async def status(settings: StackSettings, notification_id: str) -> str:
    [row] = await fetch(settings, "SELECT status FROM notifications WHERE notification_id = $1", notification_id)
    return row["status"]


def sender_settings(stack_settings: StackSettings, port: int) -> SenderSettings:
    return immediate_sender(stack_settings, smtp_port=port)


async def test_sends_once_with_a_stable_message_id_and_marks_sent(
    stack_settings: StackSettings, tmp_path: Path,
) -> None:
    port = free_port()
    sink, _ = await start_sink("127.0.0.1", port, tmp_path)
    notification_id = await pending_row(stack_settings)
    try:
        async with running(alerting.sender.main.run, sender_settings(stack_settings, port)):
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(notification_id)] * 2)
            await wait_until(lambda: _is_sent(stack_settings, notification_id), 30, "SENT")
            # A redelivery of a SENT row sends nothing.
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(notification_id)])
            await asyncio.sleep(1.0)
    finally:
        sink.close()
    [mail] = mailbox.read_all(tmp_path)
    assert mail["Message-ID"] == f"<{notification_id}@alerting.local>"
    assert mail["To"] == "ops@x.io, dev@x.io"
    assert mail["Subject"] == "[CRITICAL] db: down"


async def test_smtp_outage_is_retried_and_the_row_stays_pending_until_sent(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet
    notification_id = await pending_row(stack_settings)
    async with running(alerting.sender.main.run, sender_settings(stack_settings, port)):
        await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(notification_id)])
        await asyncio.sleep(1.5)
        assert await status(stack_settings, notification_id) == "PENDING"
        sink, _ = await start_sink("127.0.0.1", port, tmp_path)
        try:
            await wait_until(lambda: _is_sent(stack_settings, notification_id), 30, "SENT after the outage")
        finally:
            sink.close()
    assert len(mailbox.read_all(tmp_path)) == 1


async def _is_sent(settings: StackSettings, notification_id: str) -> bool:
    return await status(settings, notification_id) == "SENT"


async def test_a_permanently_refused_email_is_failed_with_the_reason_and_stalls_nothing(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    port = free_port()
    server, _ = await start_sink("127.0.0.1", port, tmp_path, rcpt_replies={"nobody@x.io": "550 5.1.1 no such user"})
    refused = await pending_row(stack_settings, "a1", emails=["nobody@x.io"])
    delivered = await pending_row(stack_settings, "a2")
    try:
        async with running(alerting.sender.main.run, sender_settings(stack_settings, port)):
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(refused), ready(delivered)])
            await wait_until(lambda: _is_sent(stack_settings, delivered), 30, "the deliverable one SENT")
            await wait_until(lambda: _has_status(stack_settings, refused, "FAILED"), 30, "the refused one FAILED")
            later = await pending_row(stack_settings, "a3")
            await send(stack_settings, topics.NOTIFICATIONS_READY, [ready(later)])
            await wait_until(lambda: _is_sent(stack_settings, later), 30, "a later one SENT")
    finally:
        server.close()
    [row] = await fetch(stack_settings, "SELECT failure FROM notifications WHERE notification_id = $1", refused)
    assert row["failure"] == "nobody@x.io: 550 5.1.1 no such user"
    assert len(mailbox.read_all(tmp_path)) == 2


async def _has_status(settings: StackSettings, notification_id: str, expected: str) -> bool:
    return await status(settings, notification_id) == expected
