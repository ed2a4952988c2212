"""The sender's delivery of emails, each a notification's or a digest's (dispatch.py decides
which): every email attempted on its own, its outcome decided by outcomes.py and recorded
by its store (store.py, digests.py).

What an email stands for is claimed under a lease, so no transaction or row lock is held
while mail is sent. An exception of any kind while rendering, encoding or sending one
email becomes its outcome and touches no other. Mail goes out before its outcome is
recorded, so a crash in between sends that email again once the lease has expired, with
the same Message-ID (at least once, never lost); each connection waits for its last
outcome to be recorded before it sends the next, so such a crash sends again at most one
email per SMTP connection (recorder.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import aiosmtplib
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from prometheus_client import Counter
from pydantic import Field

from alerting.common.failpoints import failpoint
from alerting.common.settings import Settings
from alerting.sender import answers
from alerting.sender.email_message import smtp_address
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

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sender")
EMAILS_SENT = Counter("alerting_emails_sent_total", "Emails the SMTP server accepted for at least one recipient.")
NOTIFICATIONS_DECIDED = Counter(
    "alerting_notifications_decided_total",
    "Delivery attempts, by what was attempted (notification or digest) and its resulting status.", ["status", "kind"])
RECIPIENTS_REFUSED = Counter(
    "alerting_recipients_refused_total", "Recipients refused, for good (FAILED) or for now (DEFERRED).", ["status"])
NEEDS_SMTPUTF8 = "needs SMTPUTF8 (a non-ASCII local part), which the mail server does not offer"


class SenderSettings(Settings):
    """The sender's own."""

    smtp_connections: int = Field(default=8, description=(
        "SMTP connections kept open, each sending one email at a time."))
    smtp_timeout_seconds: float = Field(default=30.0, description="The timeout of each SMTP step.")
    smtp_username: str = Field(default="", description="Log in to the SMTP server as this user, when set.")
    smtp_password: str = Field(default="", description="That user's password.")
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS.")
    delivery_lease_seconds: float = Field(default=120.0, description=(
        "How long a claimed notification or digest is this sender's: longer than any one attempt takes."))
    delivery_retry_initial_seconds: float = Field(default=5.0, description=(
        "Backoff between attempts of one email: initial × 2^(n-1), capped, then half to all of it (jitter)."))
    delivery_retry_max_seconds: float = Field(default=600.0, description="The cap of that backoff.")
    delivery_max_age_seconds: float = Field(default=24 * 3600.0, description=(
        "A notification still undeliverable this long after its creation (or its retry) is `FAILED`."))
    retry_poll_seconds: float = Field(default=1.0, description="How often the retry scheduler looks for due retries.")
    retry_batch: int = Field(default=100, description=(
        "How many notifications (or digests) the retry and digest schedulers take at once."))
    digest_poll_seconds: float = Field(default=0.5, description="How often the digest scheduler looks for due digests.")

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.delivery_retry_initial_seconds, self.delivery_retry_max_seconds,
                           timedelta(seconds=self.delivery_max_age_seconds))


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
    render: Callable[[], bytes]  # may raise: it cannot be rendered, ever
    parent: otel_context.Context
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    links: Sequence[trace.Link] = ()


class EmailSender:
    def __init__(self, settings: SenderSettings, smtp: SmtpConnections) -> None:
        self.settings = settings
        self.smtp = smtp
        self.policy = settings.retry_policy()
        self.rng = random.Random()
        # What a crash now would send again: the emails a server accepted whose outcome is
        # not recorded yet, and those being attempted, whose server's answer is not read
        # yet (it may have accepted them). At most one per connection.
        self.unrecorded: set[str] = set()
        self.unanswered: set[str] = set()

    async def deliver(self, outgoing: Sequence[Outgoing[C]], recorder: DecisionRecorder[C]) -> None:
        """Attempt every email over a few SMTP connections, each attempt's decision recorded
        before its connection sends the next email."""
        if not outgoing:
            return
        queue: asyncio.Queue[Outgoing[C]] = asyncio.Queue()
        for email in outgoing:
            queue.put_nowait(email)

        async def connection_worker() -> None:
            smtp: aiosmtplib.SMTP | None = None
            try:
                while not queue.empty():
                    email = queue.get_nowait()
                    self.unanswered.add(email.id)
                    attempt, smtp = await self.attempt(smtp, email)
                    self.unanswered.discard(email.id)
                    if any(outcome.status == RecipientStatus.SENT for outcome in attempt.recipients):
                        self.unrecorded.add(email.id)
                        failpoint("after_send")  # mail accepted, its outcome not recorded yet
                    await recorder.record(email.claimed, self.decide(email, attempt))
                    self.unrecorded.discard(email.id)
            finally:
                if smtp is not None:
                    self.smtp.release(smtp)

        # A failed record (Postgres out of reach) ends every connection's work, and is raised
        # as itself (an outage is retried): the rest stay leased, and are attempted again
        # once their leases expire.
        try:
            async with asyncio.TaskGroup() as connections:
                for _ in range(min(self.settings.smtp_connections, len(outgoing))):
                    connections.create_task(connection_worker())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from failed

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

    async def attempt(self, smtp: aiosmtplib.SMTP | None, email: Outgoing[C]) -> tuple[Attempt, aiosmtplib.SMTP | None]:
        """One attempt of one email, on `smtp` or a new connection; the connection to go on
        with (None when this one can no longer be trusted)."""
        addressed = open_recipients(email.emails, email.done)
        try:
            message = email.render()
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
