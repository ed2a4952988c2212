"""How a tenant's policy delivers a notification (pure): silenced, sent alone at once, or
grouped into a digest; when a digest is due; and how many emails a recipient may still
get this hour. The semantics are docs/architecture/ARCHITECTURE.md's "Delivery policy".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from alerting.rules.policies import Policy
from alerting.rules.silences import Matchers, is_active, silence_matches

HOUR = timedelta(hours=1)


def is_immediate(policy: Policy) -> bool:
    """One email per notification, sent at once (within the hourly limit)."""
    return policy.group_wait_seconds == 0 and not policy.group_by


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: Matchers
    starts_at: datetime
    ends_at: datetime
    expired_at: datetime | None


@dataclass(frozen=True)
class Notified:
    """What routing needs of a notification."""

    notification_id: str
    client_id: str
    severity: str
    source: str
    name: str
    rule_ids: tuple[str, ...]
    emails: tuple[str, ...]


class Way(StrEnum):
    SILENCED = "SILENCED"
    ALONE = "ALONE"
    GROUPED = "GROUPED"


@dataclass(frozen=True)
class Route:
    way: Way
    silence_id: str | None = None
    group_key: str | None = None


def silencing(silences: Iterable[Silence], severity: str, source: str, name: str, now: datetime) -> str | None:
    """The id of a silence that is active now and matches an alert of these fields."""
    for silence in silences:
        if is_active(silence.starts_at, silence.ends_at, silence.expired_at, now) and silence_matches(
                silence.matchers, severity, source, name):
            return silence.silence_id
    return None


def group_key(policy: Policy, notified: Notified) -> str:
    """The notification's group within its client: its values of the policy's group_by and
    its recipients. Stable text, as digests store it."""
    values = {"severity": notified.severity, "source": notified.source, "name": notified.name,
              "rule": ",".join(sorted(notified.rule_ids))}
    return json.dumps({"by": {field: values[field] for field in sorted(policy.group_by)},
                       "to": sorted(set(notified.emails))}, separators=(",", ":"), ensure_ascii=False)


def route(notified: Notified, policy: Policy, silences: Iterable[Silence], now: datetime, *,
          within_limit: bool) -> Route:
    """Silenced by an active silence; else alone, under the immediate policy while every
    recipient is `within_limit`; else grouped (beyond the limit, in a group of its
    recipients, as the immediate policy groups by nothing)."""
    silence_id = silencing(silences, notified.severity, notified.source, notified.name, now)
    if silence_id is not None:
        return Route(Way.SILENCED, silence_id=silence_id)
    if is_immediate(policy) and within_limit:
        return Route(Way.ALONE)
    return Route(Way.GROUPED, group_key=group_key(policy, notified))


def due_at(policy: Policy, now: datetime, last_flushed: datetime | None) -> datetime:
    """When a new digest of a group is due: `group_wait` after its first notification, or
    `group_interval` after the group's previous digest went out, if that was sooner."""
    due = now + timedelta(seconds=policy.group_wait_seconds)
    interval = timedelta(seconds=policy.group_interval_seconds)
    if last_flushed is not None and last_flushed + interval > due:
        return last_flushed + interval
    return due


def allowed_at(limit: int, sends: Mapping[str, Sequence[datetime]], now: datetime) -> datetime:
    """The first moment every recipient is under `limit` emails in the hour before it, given
    each one's sends (any order): now, or when enough of the oldest leave the hour."""
    moment = now
    for times in sends.values():
        recent = sorted(time for time in times if time > now - HOUR)
        if len(recent) >= limit:
            # The hour must no longer hold the one that would make `limit` with a new email.
            moment = max(moment, recent[len(recent) - limit] + HOUR)
    return moment


def take_budget(notified: Sequence[Notified], left: dict[tuple[str, str], int]) -> list[bool]:
    """In order, whether each notification may go out alone now: every recipient has an
    email left this hour. Those that may use one up (`left` is updated)."""
    allowed = []
    for item in notified:
        pairs = [(item.client_id, email) for email in set(item.emails)]
        ok = all(left.get(pair, 0) > 0 for pair in pairs)
        if ok:
            for pair in pairs:
                left[pair] -= 1
        allowed.append(ok)
    return allowed
