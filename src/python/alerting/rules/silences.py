"""Silences (pure): what a silence may be, when it is active, and which notifications it
mutes. The rule-service checks requests and shows each silence's state with it, and the
sender decides with it whether a notification is silenced, so what an operator is shown
and what the sender does are one function.

A silence is active at `now` when `starts_at <= now < ends_at` and, once it was expired
early, `now < expired_at`. Its matchers are each an exact, case-sensitive value or "*"
(any value), as a rule's patterns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from alerting.common.validation import InvalidField, text
from alerting.common.vocabulary import WILDCARD
from alerting.rules.validation import patterns

MAX_COMMENT = 1000
PENDING = "PENDING"
ACTIVE = "ACTIVE"
EXPIRED = "EXPIRED"


class Matchers(NamedTuple):
    """What a silence mutes: a severity name, a source and a name, each exact or "*"."""

    severity: str
    source: str
    name: str


def silence_matches(matchers: Matchers, severity: str, source: str, name: str) -> bool:
    """Whether a silence with `matchers` mutes a notification of an alert with this severity
    (its name, e.g. "HIGH"), source and name."""
    return all(pattern in (WILDCARD, value) for pattern, value in zip(matchers, (severity, source, name), strict=True))


def is_active(starts_at: datetime, ends_at: datetime, expired_at: datetime | None, now: datetime) -> bool:
    """Whether a silence mutes what it matches at `now`."""
    return starts_at <= now < ends_at and (expired_at is None or now < expired_at)


def state(starts_at: datetime, ends_at: datetime, expired_at: datetime | None, now: datetime) -> str:
    """PENDING before it starts, ACTIVE exactly when `is_active`, EXPIRED once it ended or was
    expired (a pending silence expired early never becomes active)."""
    if now >= ends_at or (expired_at is not None and now >= expired_at):
        return EXPIRED
    return PENDING if now < starts_at else ACTIVE


def matchers(severity: str, source: str, name: str) -> Matchers:
    """A request's matchers, checked as a rule's patterns are; every one may be "*" (the
    client's every notification, e.g. for a maintenance window)."""
    return Matchers(*patterns(severity, source, name))


def comment(value: str) -> str:
    """Why the silence was made: required, at most MAX_COMMENT characters, one plain line."""
    return text(value.strip(), "comment", MAX_COMMENT, missing="missing: say why the notifications are silenced")


def window(starts_at: datetime | None, ends_at: datetime | None, duration: timedelta | None, now: datetime,
           longest: timedelta) -> tuple[datetime, datetime]:
    """When a new silence starts and ends. It starts at `starts_at`, or now when that is
    unset or past (it cannot mute what was delivered before it existed); it ends at
    `ends_at` or `duration` after its start (exactly one of the two), after its start and no
    later than `longest` from now."""
    if (ends_at is None) == (duration is None):
        raise InvalidField("ends_at", "give ends_at or duration, one of them")
    start = now if starts_at is None or starts_at < now else starts_at
    latest = now + longest
    if start >= latest:
        raise InvalidField("starts_at", f"{start.isoformat()} is more than {span_text(longest)} from now,"
                                        " the longest a silence may last")
    if duration is not None:
        if duration <= timedelta(0):
            raise InvalidField("duration", "must be positive")
        if duration > longest:
            raise InvalidField("duration", f"longer than {span_text(longest)}, the longest a silence may last")
        field, end = "duration", start + duration
    else:
        assert ends_at is not None
        field, end = "ends_at", ends_at
        if end <= start:
            raise InvalidField("ends_at", f"{end.isoformat()} is not after the silence's start, {start.isoformat()}")
    if end > latest:
        raise InvalidField(field, f"the silence would end at {end.isoformat()}, more than {span_text(longest)}"
                                  " from now, the longest a silence may last")
    return start, end


def span_text(span: timedelta) -> str:
    """A length of time as people say it: whole days, else seconds."""
    seconds = span.total_seconds()
    if seconds % 86400:
        return f"{seconds:g} s"
    return "1 day" if span.days == 1 else f"{span.days} days"
