"""sender: `notifications.ready` → the notification's row → email → SENT.

A batch locks its PENDING rows (FOR UPDATE SKIP LOCKED), sends their emails, marks them
SENT and commits: a redelivered message finds the row SENT, and a concurrent one finds it
locked, and neither sends anything. Mail goes out before SENT is recorded, so a crash in
between sends that email again, with the same Message-ID (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aiosmtplib
import asyncpg
from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError
from opentelemetry import trace
from prometheus_client import Counter

from alerting.v1 import alert_pb2, events_pb2
from common import telemetry, topics
from common.db import create_pool
from common.failpoints import failpoint
from common.kafka import BatchWorker, Delivery, InvalidEvent, make_consumer, make_producer, start_clients
from common.service import Lifecycle, run_service
from common.settings import Settings
from sender.email_message import render_email
from sender.refusals import permanent_refusal
from sender.smtp_pool import SmtpConnections

log = logging.getLogger("sender")
tracer = trace.get_tracer("sender")
GROUP = "sender"
EMAILS_SENT = Counter("alerting_emails_sent_total", "Emails the SMTP server accepted.")
EMAILS_REFUSED = Counter("alerting_emails_refused_total", "Emails the SMTP server refused for good (rows FAILED).")


class SenderSettings(Settings):
    smtp_connections: int = 8
    smtp_timeout_seconds: float = 30.0
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False


def decode_notification_ready(record: ConsumerRecord) -> events_pb2.NotificationReady:
    try:
        event = events_pb2.NotificationReady.FromString(record.value or b"")
    except DecodeError as error:
        raise InvalidEvent(f"undecodable NotificationReady: {error}") from error
    if event.schema_version != topics.SCHEMA_VERSION:
        raise InvalidEvent(f"schema_version: unsupported {event.schema_version} (expected {topics.SCHEMA_VERSION})")
    try:
        uuid.UUID(event.notification_id)
    except ValueError as error:
        raise InvalidEvent(f"notification_id: not a UUID: {event.notification_id!r}") from error
    return event


CLAIM = """
SELECT notification_id, alert, rule_ids, emails, trace_context FROM notifications
WHERE notification_id = ANY($1::uuid[]) AND status = 'PENDING'
ORDER BY notification_id
FOR UPDATE SKIP LOCKED
"""
MARK_SENT = """
UPDATE notifications SET status = 'SENT', sent_at = now(), updated_at = now()
WHERE notification_id = ANY($1::uuid[]) AND status = 'PENDING'
"""
MARK_FAILED = """
UPDATE notifications AS n SET status = 'FAILED', failure = refused.reason, updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS refused(notification_id, reason)
WHERE n.notification_id = refused.notification_id AND n.status = 'PENDING'
"""


class EmailSender:
    def __init__(self, settings: SenderSettings, pool: asyncpg.Pool, smtp: SmtpConnections) -> None:
        self.settings = settings
        self.pool = pool
        self.smtp = smtp

    async def handle(self, deliveries: list[Delivery[events_pb2.NotificationReady]]) -> None:
        contexts = {str(uuid.UUID(d.message.notification_id)): d.trace_context for d in deliveries}
        async with self.pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(CLAIM, list(contexts))
            if not rows:
                return
            sent, refused, failure = await self.send_all(rows, contexts)
            await connection.execute(MARK_SENT, sent)
            if refused:
                await connection.execute(MARK_FAILED, list(refused), list(refused.values()))
        failpoint("after_db_write")
        if failure is not None:
            raise failure

    async def send_all(self, rows, contexts) -> tuple[list[str], dict[str, str], BaseException | None]:
        """Send every row's email over a few SMTP connections. Returns the ids sent; the ids
        the server refused for good, with its reason (they become FAILED); and an error if
        any other email was not accepted (those rows stay PENDING and the batch is retried)."""
        queue: asyncio.Queue = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        sent: list[str] = []
        refused: dict[str, str] = {}
        failures: list[BaseException] = []

        async def connection_worker() -> None:
            smtp = None
            try:
                while not queue.empty():
                    row = queue.get_nowait()
                    notification_id = str(row["notification_id"])
                    smtp = smtp or await self.smtp.acquire()
                    try:
                        try:
                            await self.send_one(smtp, row, contexts)
                        except aiosmtplib.SMTPServerDisconnected:
                            # A kept connection the server has since closed: once more on a new one.
                            smtp = await self.smtp.acquire()
                            await self.send_one(smtp, row, contexts)
                    except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as error:
                        reason = permanent_refusal(error)
                        if reason is None:
                            raise
                        log.warning("notification %s refused for good, marking it FAILED: %s", notification_id, reason)
                        EMAILS_REFUSED.inc()
                        refused[notification_id] = reason
                        continue
                    sent.append(notification_id)
            except (aiosmtplib.SMTPException, OSError) as error:
                failures.append(error)
                if smtp is not None:
                    smtp.close()
            finally:
                if smtp is not None:
                    self.smtp.release(smtp)

        workers = min(self.settings.smtp_connections, len(rows))
        await asyncio.gather(*(connection_worker() for _ in range(workers)))
        return sent, refused, (failures[0] if failures and len(sent) + len(refused) < len(rows) else None)

    async def send_one(self, smtp: aiosmtplib.SMTP, row, contexts) -> None:
        notification_id = str(row["notification_id"])
        parent = contexts.get(notification_id) or telemetry.context_from_traceparent(row["trace_context"])
        with tracer.start_as_current_span(
            f"{topics.NOTIFICATIONS_READY} process", context=parent, kind=trace.SpanKind.CONSUMER
        ) as span:
            alert = alert_pb2.Alert.FromString(row["alert"])
            span.set_attribute("alerting.notification_id", notification_id)
            span.set_attribute("alerting.alert_id", alert.alert_id)
            recipients = list(row["emails"])
            message = render_email(
                notification_id, self.settings.smtp_sender, recipients, alert,
                [str(rule_id) for rule_id in row["rule_ids"]],
            )
            with tracer.start_as_current_span("smtp send", kind=trace.SpanKind.CLIENT):
                await smtp.sendmail(self.settings.smtp_sender, recipients, message)
            EMAILS_SENT.inc()


async def run(settings: SenderSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, stop=lifecycle.stop)
    consumer = make_consumer(settings, GROUP, topics.NOTIFICATIONS_READY)
    producer = make_producer(settings)  # dead letters
    smtp = SmtpConnections(
        host=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_seconds,
        start_tls=settings.smtp_starttls, username=settings.smtp_username, password=settings.smtp_password,
    )
    await start_clients(settings, producer, consumer, stop=lifecycle.stop)
    try:
        worker = BatchWorker(
            service="sender",
            settings=settings,
            consumer=consumer,
            producer=producer,
            decode=decode_notification_ready,
            handle=EmailSender(settings, pool, smtp).handle,
            stop=lifecycle.stop,
        )
        lifecycle.healthy = lambda: worker.last_batch_ok
        await worker.run()
    finally:
        await consumer.stop()
        await producer.stop()
        await smtp.close()
        await pool.close()


def main() -> None:
    run_service("sender", SenderSettings(), run)


if __name__ == "__main__":
    main()
