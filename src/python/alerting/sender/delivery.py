"""The sender's durable step: a batch's PENDING rows claimed, their emails sent, their
outcomes recorded.

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
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter

from alerting.common.failpoints import failpoint
from alerting.common.kafka import Delivery
from alerting.common.settings import Settings
from alerting.sender import store
from alerting.sender.email_message import render_email
from alerting.sender.refusals import permanent_refusal
from alerting.sender.smtp_pool import SmtpConnections
from alerting.sender.store import PendingNotification
from alerting.v1 import alert_pb2, events_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sender")
EMAILS_SENT = Counter("alerting_emails_sent_total", "Emails the SMTP server accepted.")
EMAILS_REFUSED = Counter("alerting_emails_refused_total", "Emails the SMTP server refused for good (rows FAILED).")


class SenderSettings(Settings):
    smtp_connections: int = 8
    smtp_timeout_seconds: float = 30.0
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False


class EmailSender:
    def __init__(self, settings: SenderSettings, pool: asyncpg.Pool, smtp: SmtpConnections) -> None:
        self.settings = settings
        self.pool = pool
        self.smtp = smtp

    async def handle(self, deliveries: list[Delivery[events_pb2.NotificationReady]]) -> None:
        contexts = {str(uuid.UUID(d.message.notification_id)): d.trace_context for d in deliveries}
        async with self.pool.acquire() as connection, connection.transaction():
            claimed = await store.claim(connection, list(contexts))
            if not claimed:
                return
            sent, refused, failure = await self.send_all(claimed, contexts)
            await store.record_outcomes(connection, sent, refused)
        failpoint("after_db_write")
        if failure is not None:
            raise failure

    async def send_all(
        self, rows: list[PendingNotification], contexts: dict[str, otel_context.Context]
    ) -> tuple[list[str], dict[str, str], BaseException | None]:
        """Send every row's email over a few SMTP connections. Returns the ids sent; the ids
        the server refused for good, with its reason (they become FAILED); and an error if
        any other email was not accepted (those rows stay PENDING and the batch is retried)."""
        queue: asyncio.Queue[PendingNotification] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)
        sent: list[str] = []
        refused: dict[str, str] = {}
        failures: list[BaseException] = []

        async def connection_worker() -> None:
            smtp: aiosmtplib.SMTP | None = None
            try:
                while not queue.empty():
                    row = queue.get_nowait()
                    notification_id = row.notification_id
                    smtp = smtp or await self.smtp.acquire()
                    try:
                        try:
                            await self.send_one(smtp, row, contexts[notification_id])
                        except aiosmtplib.SMTPServerDisconnected:
                            # A kept connection the server has since closed: once more on a new one.
                            smtp = await self.smtp.acquire()
                            await self.send_one(smtp, row, contexts[notification_id])
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

    async def send_one(self, smtp: aiosmtplib.SMTP, row: PendingNotification, parent: otel_context.Context) -> None:
        """Send one row's email; `parent` is the context of its message's processing."""
        alert = alert_pb2.Alert.FromString(row.alert)
        message = render_email(row.notification_id, self.settings.smtp_sender, list(row.emails), alert,
                               list(row.rule_ids))
        with tracer.start_as_current_span("smtp send", context=parent, kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute("alerting.notification_id", row.notification_id)
            span.set_attribute("alerting.alert_id", alert.alert_id)
            await smtp.sendmail(self.settings.smtp_sender, list(row.emails), message)
        EMAILS_SENT.inc()
