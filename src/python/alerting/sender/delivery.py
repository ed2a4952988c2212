"""The sender's delivery: every notification attempted on its own, its outcome decided by
outcomes.py and recorded by store.py, whether it came from `notifications.ready` or is a
retry that came due.

A notification is claimed under a lease, so no transaction or row lock is held while mail
is sent. An exception of any kind while rendering, encoding or sending one notification
becomes that notification's outcome and touches no other. Mail goes out before its
outcome is recorded, so a crash in between sends that email again once the lease has
expired, with the same Message-ID (at least once, never lost).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import aiosmtplib
import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter

from alerting.common import failpoints, telemetry
from alerting.common.failpoints import failpoint
from alerting.common.kafka import Delivery
from alerting.common.settings import Settings
from alerting.sender import answers, store
from alerting.sender.email_message import render_email, smtp_address
from alerting.sender.outcomes import (
    Attempt,
    Decision,
    RecipientOutcome,
    RecipientStatus,
    RetryPolicy,
    Status,
    decide,
    open_recipients,
)
from alerting.sender.recorder import DecisionRecorder
from alerting.sender.smtp_pool import SmtpConnections
from alerting.sender.store import ClaimedNotification
from alerting.v1 import alert_pb2, events_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sender")
EMAILS_SENT = Counter("alerting_emails_sent_total", "Emails the SMTP server accepted for at least one recipient.")
NOTIFICATIONS_DECIDED = Counter(
    "alerting_notifications_decided_total", "Delivery attempts, by the notification's resulting status.", ["status"])
RECIPIENTS_REFUSED = Counter(
    "alerting_recipients_refused_total", "Recipients refused, for good (FAILED) or for now (DEFERRED).", ["status"])
NEEDS_SMTPUTF8 = "needs SMTPUTF8 (a non-ASCII local part), which the mail server does not offer"


class SenderSettings(Settings):
    smtp_connections: int = 8
    smtp_timeout_seconds: float = 30.0
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    # How long a claimed notification is this sender's: longer than any one attempt takes.
    delivery_lease_seconds: float = 120.0
    # Backoff between attempts of one notification, and the age at which it is FAILED.
    delivery_retry_initial_seconds: float = 5.0
    delivery_retry_max_seconds: float = 600.0
    delivery_max_age_seconds: float = 24 * 3600.0
    # The retry scheduler: how often it looks for due retries, and how many it takes at once.
    retry_poll_seconds: float = 1.0
    retry_batch: int = 100

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.delivery_retry_initial_seconds, self.delivery_retry_max_seconds,
                           timedelta(seconds=self.delivery_max_age_seconds))


class EmailSender:
    def __init__(self, settings: SenderSettings, pool: asyncpg.Pool, smtp: SmtpConnections) -> None:
        self.settings = settings
        self.pool = pool
        self.smtp = smtp
        self.policy = settings.retry_policy()
        self.rng = random.Random()
        # Whose leases these are: the instance id survives a restart, so a restarted sender
        # can free what it held; without one, a name no other process has.
        self.owner = settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        # What a crash now would send again: the notifications whose mail a server accepted
        # and whose outcome is not recorded yet, and those being attempted, whose server's
        # answer is not read yet (it may have accepted them). At most one per connection.
        self.unrecorded: set[str] = set()
        self.unanswered: set[str] = set()
        failpoints.unfinished(lambda: [f"accepted {n}" for n in sorted(self.unrecorded)]
                              + [f"unanswered {n}" for n in sorted(self.unanswered)])
        self.recorder = DecisionRecorder(lambda decided: store.record(self.pool, decided))

    async def release_own_leases(self) -> None:
        """At start-up: free the leases this instance held when it last died."""
        if self.settings.instance_id:
            released = await store.release_leases(self.pool, self.owner)
            if released:
                log.warning("released %d leases of notifications this sender held when it stopped", released)

    async def handle(self, deliveries: list[Delivery[events_pb2.NotificationReady]]) -> None:
        """The durable step of a `notifications.ready` batch: its notifications claimed,
        attempted and their outcomes recorded. Those not PENDING, not due or leased by
        another sender are skipped: a redelivered message finds its notification SENT."""
        contexts = {d.message.notification_id: d.trace_context for d in deliveries}
        claimed = await store.claim(self.pool, list(contexts), self.settings.delivery_lease_seconds, self.owner)
        await self.deliver(claimed, contexts)

    async def retry_due(self, stop: asyncio.Event) -> None:
        """The retry scheduler: attempts notifications whose next attempt is due, until
        stopped. A failure (Postgres out of reach) is logged and the next poll tries again."""
        while not stop.is_set():
            try:
                claimed = await store.claim_due(self.pool, self.settings.delivery_lease_seconds,
                                                self.settings.retry_batch, self.owner)
                await self.deliver(claimed, {})
            except Exception as error:
                log.warning("retrying due notifications failed, trying again: %r", error)
                claimed = []
            if len(claimed) < self.settings.retry_batch:
                try:
                    await asyncio.wait_for(stop.wait(), self.settings.retry_poll_seconds)
                except TimeoutError:
                    pass

    async def deliver(
        self, claimed: Sequence[ClaimedNotification], contexts: Mapping[str, otel_context.Context]
    ) -> None:
        """Attempt every claimed notification over a few SMTP connections, each attempt's
        decision recorded before its connection sends the next email."""
        if not claimed:
            return
        queue: asyncio.Queue[ClaimedNotification] = asyncio.Queue()
        for notification in claimed:
            queue.put_nowait(notification)

        async def connection_worker() -> None:
            smtp: aiosmtplib.SMTP | None = None
            try:
                while not queue.empty():
                    notification = queue.get_nowait()
                    parent = contexts.get(notification.notification_id) or telemetry.context_from_traceparent(
                        notification.trace_context)
                    self.unanswered.add(notification.notification_id)
                    attempt, smtp = await self.attempt(smtp, notification, parent)
                    self.unanswered.discard(notification.notification_id)
                    if any(outcome.status == RecipientStatus.SENT for outcome in attempt.recipients):
                        self.unrecorded.add(notification.notification_id)
                        failpoint("after_send")  # mail accepted, its outcome not recorded yet
                    await self.recorder.record(notification, self.decide(notification, attempt))
                    self.unrecorded.discard(notification.notification_id)
            finally:
                if smtp is not None:
                    self.smtp.release(smtp)

        # A failed record (Postgres out of reach) ends every connection's work, and is raised
        # as itself (an outage is retried): the rest stay leased, and are attempted again
        # once their leases expire.
        try:
            async with asyncio.TaskGroup() as connections:
                for _ in range(min(self.settings.smtp_connections, len(claimed))):
                    connections.create_task(connection_worker())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from failed

    def decide(self, notification: ClaimedNotification, attempt: Attempt) -> Decision:
        decision = decide(
            attempt, addressed=open_recipients(notification.emails, notification.done), done=notification.done,
            attempts=notification.attempts, age_from=notification.age_from, now=datetime.now(UTC),
            policy=self.policy, rng=self.rng,
        )
        NOTIFICATIONS_DECIDED.labels(decision.status.value).inc()
        for outcome in decision.recipients:
            if outcome.status != RecipientStatus.SENT:
                RECIPIENTS_REFUSED.labels(outcome.status.value).inc()
        if decision.status == Status.FAILED:
            log.warning("notification %s FAILED: %s", notification.notification_id, decision.failure)
        return decision

    async def attempt(
        self, smtp: aiosmtplib.SMTP | None, notification: ClaimedNotification, parent: otel_context.Context
    ) -> tuple[Attempt, aiosmtplib.SMTP | None]:
        """One attempt of one notification, on `smtp` or a new connection; the connection
        to go on with (None when this one can no longer be trusted)."""
        addressed = open_recipients(notification.emails, notification.done)
        try:
            alert = alert_pb2.Alert.FromString(notification.alert)
            message = render_email(notification.notification_id, self.settings.smtp_sender,
                                   list(notification.emails), alert, list(notification.rule_ids))
        except Exception as error:  # whatever the data: this notification cannot be rendered, ever
            return Attempt(rejected=f"cannot render the email: {error!r}"), smtp
        with tracer.start_as_current_span("smtp send", context=parent, kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute("alerting.notification_id", notification.notification_id)
            span.set_attribute("alerting.alert_id", alert.alert_id)
            span.set_attribute("alerting.attempt", notification.attempts)
            reused = smtp is not None
            try:
                smtp = smtp or await self.smtp.acquire()
                try:
                    return await self.send(smtp, addressed, message), smtp
                except aiosmtplib.SMTPServerDisconnected:
                    if not reused:
                        raise
                    # A kept connection the server has since closed: once more on a new one.
                    smtp = await self.smtp.acquire()
                    return await self.send(smtp, addressed, message), smtp
            except Exception as error:
                # The connection's state is unknown after any error: the next attempt opens another.
                if smtp is not None:
                    smtp.close()
                return answers.failed(error), None

    async def send(self, smtp: aiosmtplib.SMTP, addressed: Sequence[str], message: bytes) -> Attempt:
        """Send `message` to the addressed recipients the server can take; an address that
        needs SMTPUTF8 from a server without it is FAILED on its own."""
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo()
        utf8 = smtp.supports_extension("smtputf8")
        stored_of: dict[str, str] = {}
        unusable: list[RecipientOutcome] = []
        for email in addressed:
            address = smtp_address(email, utf8)
            if address is None:
                unusable.append(RecipientOutcome(email, RecipientStatus.FAILED, NEEDS_SMTPUTF8))
            else:
                stored_of[address] = email
        if not stored_of:
            return Attempt(recipients=unusable)
        options = [] if all(address.isascii() for address in stored_of) else ["SMTPUTF8"]
        try:
            refused, response = await smtp.sendmail(self.settings.smtp_sender, list(stored_of), message,
                                                    mail_options=options)
            attempt = answers.accepted(list(stored_of), refused, response)
            EMAILS_SENT.inc()
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPRecipientRefused) as error:
            attempt = answers.failed(error)
        return Attempt(recipients=[
            RecipientOutcome(stored_of.get(outcome.email, outcome.email), outcome.status, outcome.response)
            for outcome in attempt.recipients
        ] + unusable)
