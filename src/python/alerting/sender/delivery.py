"""The sender's deliveries, each a notification's or a digest's (dispatch.py decides which):
an email to its addresses and one to each of its email receivers' addresses, and a request
to each of its other receivers (webhook, Slack), every
delivery attempted on its own, its outcome per recipient decided by outcomes.py and
recorded by its store (store.py, digests.py).

What a delivery stands for is claimed under a lease, so no transaction or row lock is held
while it is sent. An exception of any kind while rendering, encoding or sending one
delivery becomes its outcome and touches no other. It goes out before its outcome is
recorded, so a crash in between sends it again once the lease has expired, with the same
Message-ID and Idempotency-Key (at least once, never lost); each SMTP connection waits for
its last outcome to be recorded before it sends the next, so such a crash sends again at
most one email-only delivery per SMTP connection (recorder.py), and those with receivers
under way. The SMTP connections are a fixed set of workers that take emails from one
bounded queue: handing a batch's emails over returns once they are queued, so the next
batch is read and claimed while they are sent, and the connections never wait for a
batch's slowest email. Deliveries with receivers do not queue for the SMTP connections:
each is a task of its own, so that a slow receiver holds up only its own deliveries
(notify/outbound.py bounds each host's).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from prometheus_client import Counter

from alerting.common.failpoints import failpoint
from alerting.common.kafka.outages import is_outage
from alerting.common.retry import retry_until_done
from alerting.common.settings import SenderSettings
from alerting.rules.receivers import OutboundPolicy, receiver_of, signature
from alerting.sender import answers
from alerting.sender.email_message import smtp_address
from alerting.sender.notify.documents import Delivered, slack_body, webhook_body
from alerting.sender.notify.outbound import Outbound, OutboundLimits
from alerting.sender.notify.smtp import Disconnected, RecipientsRefused, SmtpConnection
from alerting.sender.notify.targets import Target, Unusable
from alerting.sender.outcomes import (
    Attempt,
    Decision,
    RecipientOutcome,
    RecipientStatus,
    RetryPolicy,
    Status,
    any_sent,
    decide,
    open_recipients,
    receiver_outcome,
)
from alerting.sender.recorder import DecisionRecorder
from alerting.sender.smtp_pool import SmtpConnections

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sender")
EMAILS_SENT = Counter("alerting_emails_sent_total", "Emails the SMTP server accepted for at least one recipient.")
NOTIFICATIONS_DECIDED = Counter(
    "alerting_notifications_decided_total",
    "Delivery attempts, by what was attempted (notification or digest) and its resulting status.", ["status", "kind"])
RECIPIENTS_REFUSED = Counter(
    "alerting_recipients_refused_total", "Recipients refused, for good (FAILED) or for now (DEFERRED).", ["status"])
REQUESTS_SENT = Counter("alerting_receiver_requests_sent_total", "Requests a receiver accepted (2xx), by kind.",
                        ["kind"])
USER_AGENT = "alerting-platform-webhooks/1"
TIMESTAMP_HEADER = "x-alerting-timestamp"
SIGNATURE_HEADER = "x-alerting-signature"
NEEDS_SMTPUTF8 = "needs SMTPUTF8 (a non-ASCII local part), which the mail server does not offer"
# Emails claimed and waiting for an SMTP connection, per connection: enough that a connection
# finds the next one ready, few enough that their leases run only briefly meanwhile.
QUEUED_PER_CONNECTION = 4


def retry_policy(settings: SenderSettings) -> RetryPolicy:
    return RetryPolicy(settings.delivery_retry_initial_seconds, settings.delivery_retry_max_seconds,
                       timedelta(seconds=settings.delivery_max_age_seconds))


def outbound(settings: SenderSettings) -> Outbound:
    limits = OutboundLimits(settings.webhook_timeout_seconds, settings.webhook_connect_timeout_seconds,
                            settings.webhook_requests_per_host, settings.webhook_host_wait_seconds,
                            settings.webhook_max_response_bytes, settings.webhook_max_redirects)
    return Outbound(OutboundPolicy.of(settings.outbound_allow_http, settings.outbound_allowed_networks), limits,
                    settings.outbound_ca_file or None)


def lookup_link(settings: SenderSettings, kind: str, id_: str) -> str:
    """Where a person looks up the notification or digest `id_`, for a Slack message."""
    if settings.notification_link:
        return settings.notification_link.replace("{id}", id_)
    return f"alertctl notification {'list --digest' if kind == 'digest' else 'show'} {id_}"


C = TypeVar("C")


@dataclass(frozen=True)
class Outgoing(Generic[C]):
    """One email to attempt: what it stands for (`claimed`, which its recorder records), the
    recipients, the earlier attempts, and how to render it and trace it."""

    claimed: C
    kind: str  # "notification" or "digest", for metrics and logs
    id: str  # the notification's or digest's: the email's Message-ID
    emails: tuple[str, ...]
    done: Mapping[str, RecipientStatus]  # recipients SENT or FAILED by earlier attempts
    attempts: int  # this attempt included
    age_from: datetime
    render: Callable[[Sequence[str]], bytes]  # the email to these addresses; may raise: it cannot be rendered, ever
    parent: otel_context.Context
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    links: Sequence[trace.Link] = ()
    # For receivers among the recipients: whose it is, what it tells, and the receivers.
    client_id: str = ""
    delivered: Callable[[], Sequence[Delivered]] = tuple
    targets: Mapping[str, Target | Unusable] = field(default_factory=dict)

    def addresses(self) -> tuple[str, ...]:
        return tuple(recipient for recipient in self.emails if receiver_of(recipient) is None)


class EmailSender:
    def __init__(self, settings: SenderSettings, smtp: SmtpConnections) -> None:
        self.settings = settings
        self.smtp = smtp
        self.policy = retry_policy(settings)
        self.rng = random.Random()
        # What a crash now may send again, beside what the recorders hold: the emails being
        # attempted, whose server's answer is not read yet (it may have accepted them).
        self.unanswered: set[str] = set()
        self.outbound = outbound(settings)
        # Deliveries with receivers, each attempted on its own beside the SMTP connections.
        self.with_receivers: set[asyncio.Task[None]] = set()
        # Emails for the SMTP connections, each with its recorder; the connections' workers
        # start with the first email.
        self.queue: asyncio.Queue[tuple[Outgoing[Any], DecisionRecorder[Any]]] = asyncio.Queue(
            settings.smtp_connections * QUEUED_PER_CONNECTION)
        self.connections: list[asyncio.Task[None]] = []
        # Set when the service stops: an outcome that cannot be recorded then is left leased.
        self.stopping = asyncio.Event()

    async def aclose(self) -> None:
        """Sends what was handed over and waits for deliveries with receivers under way
        (SMTP steps and requests are bounded in time), then closes the HTTP client."""
        self.stopping.set()
        await self.queue.join()
        for connection in self.connections:
            connection.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        if self.with_receivers:
            await asyncio.wait(self.with_receivers)
        await self.outbound.aclose()

    async def deliver(self, outgoing: Sequence[Outgoing[C]], recorder: DecisionRecorder[C]) -> None:
        """Hand every email to the SMTP connections, waiting while their queue is full, and
        every delivery with receivers to a task of its own. Returns once all are handed
        over, before they are sent: what they stand for is leased, and a crash from here on
        leaves it to be attempted again when the lease expires."""
        if not self.connections:
            self.connections = [asyncio.create_task(self.connection_worker())
                                for _ in range(self.settings.smtp_connections)]
        for email in outgoing:
            if any(receiver_of(recipient) is not None for recipient in open_recipients(email.emails, email.done)):
                task = asyncio.create_task(self.deliver_with_receivers(email, recorder))
                self.with_receivers.add(task)
                task.add_done_callback(self.with_receivers.discard)
            else:
                await self.queue.put((email, recorder))

    async def connection_worker(self) -> None:
        """One SMTP connection: the queue's emails one at a time, each decision recorded
        before the next email."""
        smtp: SmtpConnection | None = None
        try:
            while True:
                email, recorder = await self.queue.get()
                try:
                    self.unanswered.add(email.id)
                    attempt, smtp = await self.attempt(smtp, email)
                    self.unanswered.discard(email.id)
                    decision = self.decide(email, attempt)
                    written = recorder.submit(email.claimed, decision)
                    if any_sent(attempt.recipients):
                        failpoint("after_send")  # mail accepted, its record not begun
                    await self.recorded(email, recorder, decision, written)
                except Exception:  # a defect here must not take the connection away from the rest
                    log.exception("delivering %s %s failed; it is attempted again when its lease expires",
                                  email.kind, email.id)
                finally:
                    self.queue.task_done()
        finally:
            if smtp is not None:
                self.smtp.release(smtp)

    async def recorded(self, email: Outgoing[C], recorder: DecisionRecorder[C], decision: Decision,
                       written: asyncio.Future[None]) -> None:
        """Waits for the decision's record; through an outage of Postgres, records it again
        until it is written (the connection sends nothing meanwhile). Any other failure, or
        an outage once the service is stopping, leaves it leased: it is attempted again when
        the lease expires."""
        try:
            try:
                await written
            except Exception as error:
                if not is_outage(error):
                    raise
                await retry_until_done(lambda: recorder.submit(email.claimed, decision), self.settings,
                                       what=f"recording {email.kind} {email.id}", stop=self.stopping,
                                       retry_if=is_outage)
        except Exception as error:  # Stopping among them
            log.warning("recording %s %s failed; it is attempted again when its lease expires: %r",
                        email.kind, email.id, error)

    async def deliver_with_receivers(self, email: Outgoing[C], recorder: DecisionRecorder[C]) -> None:
        """One delivery whose recipients include receivers, on its own: each receiver's
        request and the email to its addresses (on a connection of its own) at once, their
        outcomes decided and recorded together. It does not wait for the SMTP connections'
        queue, nor they for a slow receiver. Its record goes as theirs does (`recorded`)."""
        recipients = open_recipients(email.emails, email.done)
        addresses = [recipient for recipient in recipients if receiver_of(recipient) is None]
        parts = [self.request(email, recipient) for recipient in recipients if receiver_of(recipient) is not None]
        if addresses:
            parts.append(self.email_to(email, addresses))
        self.unanswered.add(email.id)
        try:
            outcomes = [outcome for part in await asyncio.gather(*parts) for outcome in part]
        finally:
            self.unanswered.discard(email.id)
        decision = self.decide(email, Attempt(recipients=outcomes))
        written = recorder.submit(email.claimed, decision)
        if any_sent(outcomes):
            failpoint("after_send")
        await self.recorded(email, recorder, decision, written)

    async def email_to(self, email: Outgoing[C], addresses: Sequence[str]) -> Sequence[RecipientOutcome]:
        """The email part of a delivery with receivers: an outcome per address."""
        attempt, smtp = await self.attempt(None, replace(email, emails=tuple(addresses)))
        if smtp is not None:
            self.smtp.release(smtp)
        if attempt.rejected is not None:
            return [RecipientOutcome(address, RecipientStatus.FAILED, attempt.rejected) for address in addresses]
        if attempt.error is not None:
            return [RecipientOutcome(address, RecipientStatus.DEFERRED, attempt.error) for address in addresses]
        return attempt.recipients

    async def request(self, email: Outgoing[C], recipient: str) -> Sequence[RecipientOutcome]:
        """One receiver's request, signed if it is a webhook, traced as the email's send is
        (an email receiver's is an email to its addresses)."""
        receiver_id = receiver_of(recipient)
        target = email.targets.get(receiver_id or "")
        if target is None or (isinstance(target, Target) and target.client_id != email.client_id):
            return [RecipientOutcome(recipient, RecipientStatus.FAILED, "the receiver no longer exists")]
        if isinstance(target, Unusable):
            return [RecipientOutcome(recipient, RecipientStatus.DEFERRED, target.reason)]
        if target.kind == "email":
            attempt, smtp = await self.attempt(None, replace(
                email, emails=target.addresses, done={},
                attributes={**email.attributes, "alerting.receiver_id": target.receiver_id}))
            if smtp is not None:
                self.smtp.release(smtp)
            return [receiver_outcome(recipient, attempt)]
        try:
            delivered = email.delivered()
            body = (slack_body(email.kind, delivered, lookup_link(self.settings, email.kind, email.id))
                    if target.kind == "slack" else webhook_body(email.kind, email.id, email.client_id, delivered))
        except Exception as error:  # whatever the data: this body cannot be made, ever
            return [RecipientOutcome(recipient, RecipientStatus.FAILED, f"cannot render the request: {error!r}")]
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, "idempotency-key": email.id}
        if target.secret is not None:
            timestamp = int(time.time())
            headers |= {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(target.secret, timestamp, body)}
        with tracer.start_as_current_span(f"{target.kind} post", context=email.parent, kind=trace.SpanKind.CLIENT,
                                          links=email.links) as span:
            span.set_attribute(f"alerting.{email.kind}_id", email.id)
            span.set_attribute("alerting.receiver_id", target.receiver_id)
            span.set_attribute("alerting.attempt", email.attempts)
            outcome = await self.outbound.post(target.url, body, headers, recipient)
            span.set_attribute("alerting.outcome", outcome.status.value)
        if outcome.status == RecipientStatus.SENT:
            REQUESTS_SENT.labels(target.kind).inc()
        return [outcome]

    def decide(self, email: Outgoing[C], attempt: Attempt) -> Decision:
        decision = decide(
            attempt, addressed=open_recipients(email.emails, email.done), done=email.done,
            attempts=email.attempts, age_from=email.age_from, now=datetime.now(UTC), policy=self.policy, rng=self.rng,
        )
        NOTIFICATIONS_DECIDED.labels(decision.status.value, email.kind).inc()
        for outcome in decision.recipients:
            if outcome.status != RecipientStatus.SENT:
                RECIPIENTS_REFUSED.labels(outcome.status.value).inc()
        if decision.status == Status.FAILED:
            log.warning("%s %s FAILED: %s", email.kind, email.id, decision.failure)
        return decision

    async def attempt(self, smtp: SmtpConnection | None, email: Outgoing[C]) -> tuple[Attempt, SmtpConnection | None]:
        """One attempt of one email, on `smtp` or a new connection; the connection to go on
        with (None when this one can no longer be trusted)."""
        addressed = open_recipients(email.emails, email.done)
        try:
            message = email.render(email.addresses())
        except Exception as error:  # whatever the data: this email cannot be rendered, ever
            return Attempt(rejected=f"cannot render the email: {error!r}"), smtp
        with tracer.start_as_current_span("smtp send", context=email.parent, kind=trace.SpanKind.CLIENT,
                                          links=email.links) as span:
            span.set_attribute(f"alerting.{email.kind}_id", email.id)
            span.set_attribute("alerting.attempt", email.attempts)
            for name, value in email.attributes.items():
                span.set_attribute(name, value)
            reused = smtp is not None
            try:
                smtp = smtp or await self.smtp.acquire()
                try:
                    return await self.send(smtp, addressed, message), smtp
                except Disconnected:
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

    async def send(self, smtp: SmtpConnection, addressed: Sequence[str], message: bytes) -> Attempt:
        """Send `message` to the addressed recipients the server can take; an address that
        needs SMTPUTF8 from a server without it is FAILED on its own."""
        utf8 = smtp.supports("SMTPUTF8")
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
        try:
            refused, reply = await smtp.send(self.settings.smtp_sender, list(stored_of), message,
                                             smtputf8=not all(address.isascii() for address in stored_of))
            attempt = answers.accepted(list(stored_of), refused, reply)
            EMAILS_SENT.inc()
        except RecipientsRefused as error:
            attempt = answers.failed(error)
        return Attempt(recipients=[
            RecipientOutcome(stored_of.get(outcome.email, outcome.email), outcome.status, outcome.response)
            for outcome in attempt.recipients
        ] + unusable)
