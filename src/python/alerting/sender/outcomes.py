"""What one delivery attempt means for its notification (pure): which recipients are done,
whether the notification is SENT, FAILED or tried again, and when.

An attempt ends in one of three ways. The servers answered per recipient (`recipients`):
for an email address, 2xx is SENT, 5xx FAILED for good, 4xx DEFERRED and tried again; a
receiver's answers are read the same way by notify/outbound.py, and a DEFERRED one may say
when it may be tried again (Retry-After). The message itself was
refused for good (`rejected`: a 5xx to its content, or an email that cannot be rendered
or encoded): every recipient still open is FAILED. Or the attempt failed before any
answer (`error`: no connection, a timeout, a 4xx to the message, anything unforeseen): it
is tried again, with exponential backoff and jitter, until the notification is older
than the maximum age, when it is FAILED with the last error.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class RecipientStatus(StrEnum):
    SENT = "SENT"
    FAILED = "FAILED"
    DEFERRED = "DEFERRED"


FINAL = frozenset({RecipientStatus.SENT, RecipientStatus.FAILED})


@dataclass(frozen=True)
class RecipientOutcome:
    email: str
    status: RecipientStatus
    response: str  # the server's answer, or why the address was never tried
    retry_at: datetime | None = None  # DEFERRED: not tried again before this (an HTTP Retry-After)


def any_sent(outcomes: Iterable[RecipientOutcome]) -> bool:
    """Whether some recipient took it."""
    return any(outcome.status == RecipientStatus.SENT for outcome in outcomes)


@dataclass(frozen=True)
class Attempt:
    """What happened to one attempt: per-recipient answers, or a reason for the whole of it."""

    recipients: Sequence[RecipientOutcome] = ()
    rejected: str | None = None  # refused for good, whatever the recipient
    error: str | None = None  # failed before the server answered for the recipients


@dataclass(frozen=True)
class RetryPolicy:
    initial_seconds: float = 5.0
    max_seconds: float = 600.0
    max_age: timedelta = timedelta(hours=24)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """Exponential in the attempts made so far, capped, with jitter (half to all of it)
        so that notifications that failed together are not retried together."""
        ceiling = min(self.max_seconds, self.initial_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


@dataclass(frozen=True)
class Decision:
    status: Status
    recipients: Sequence[RecipientOutcome] = field(default_factory=tuple)  # outcomes to record
    failure: str | None = None  # when FAILED: why
    last_error: str | None = None  # when tried again: why
    next_attempt_at: datetime | None = None  # when tried again


def receiver_outcome(recipient: str, attempt: Attempt) -> RecipientOutcome:
    """An email receiver's outcome, from the one email to its addresses: DEFERRED while any
    address is (the next attempt sends to every one again, with the same Message-ID), else
    SENT if any address took it (the refusals named), else FAILED."""
    if attempt.rejected is not None:
        return RecipientOutcome(recipient, RecipientStatus.FAILED, attempt.rejected)
    if attempt.error is not None:
        return RecipientOutcome(recipient, RecipientStatus.DEFERRED, attempt.error)
    deferred = [o for o in attempt.recipients if o.status == RecipientStatus.DEFERRED]
    if deferred:
        status, told = RecipientStatus.DEFERRED, deferred
    elif any_sent(attempt.recipients):
        status, told = RecipientStatus.SENT, list(attempt.recipients)
    else:
        status, told = RecipientStatus.FAILED, list(attempt.recipients)
    return RecipientOutcome(recipient, status, "; ".join(f"{o.email}: {o.response}" for o in told))


def open_recipients(emails: Sequence[str], done: Mapping[str, RecipientStatus]) -> list[str]:
    """The recipients an attempt still has to address: not yet SENT or FAILED."""
    return [email for email in emails if done.get(email) not in FINAL]


def decide(
    attempt: Attempt,
    *,
    addressed: Sequence[str],
    done: Mapping[str, RecipientStatus],
    attempts: int,
    age_from: datetime,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """The notification's next state after `attempt`, its `attempts`-th, which addressed
    `addressed`; `done` holds the final outcomes of earlier attempts."""
    expired = now - age_from >= policy.max_age
    if attempt.rejected is not None:
        outcomes = [RecipientOutcome(email, RecipientStatus.FAILED, attempt.rejected) for email in addressed]
        return _final(outcomes, done, attempt.rejected)
    if attempt.error is not None:
        if expired:
            reason = f"undeliverable for {policy.max_age} ({attempts} attempts); last error: {attempt.error}"
            outcomes = [RecipientOutcome(email, RecipientStatus.FAILED, reason) for email in addressed]
            return _final(outcomes, done, reason)
        return Decision(Status.PENDING, (), last_error=attempt.error,
                        next_attempt_at=now + policy.delay(attempts, rng))
    outcomes = list(attempt.recipients)
    deferred = [outcome for outcome in outcomes if outcome.status == RecipientStatus.DEFERRED]
    if not deferred:
        return _final(outcomes, done, "; ".join(f"{o.email}: {o.response}" for o in outcomes))
    reason = "; ".join(f"{o.email}: {o.response}" for o in deferred)
    if expired:
        gave_up = f"undeliverable for {policy.max_age} ({attempts} attempts); last answer: "
        outcomes = [RecipientOutcome(o.email, RecipientStatus.FAILED, gave_up + o.response)
                    if o.status == RecipientStatus.DEFERRED else o for o in outcomes]
        return _final(outcomes, done, gave_up + reason)
    asked = [o.retry_at for o in deferred if o.retry_at is not None]
    return Decision(Status.PENDING, outcomes, last_error=reason,
                    next_attempt_at=max([now + policy.delay(attempts, rng), *asked]))


def _final(outcomes: Sequence[RecipientOutcome], done: Mapping[str, RecipientStatus], reason: str) -> Decision:
    """Every recipient is SENT or FAILED: the notification is SENT if anyone received it,
    else FAILED with the reasons."""
    delivered = any_sent(outcomes) or RecipientStatus.SENT in done.values()
    if delivered:
        return Decision(Status.SENT, outcomes)
    return Decision(Status.FAILED, outcomes, failure=reason)
