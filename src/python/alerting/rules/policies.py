"""Notification policies (pure): what a client's policy may be, and the platform's default
for a client that never set one. The rule-service checks requests with it; the sender
delivers by it (the `notification_policies` table's CHECKs mirror the bounds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alerting.common.settings import PolicySettings
from alerting.common.validation import InvalidField

# What may group notifications, in the order a policy stores and shows them.
GROUP_BY_FIELDS = ("severity", "source", "name", "rule")
MAX_GROUP_WAIT_SECONDS = 3600
MAX_GROUP_INTERVAL_SECONDS = 86400
MAX_EMAILS_PER_HOUR = 100_000


@dataclass(frozen=True)
class Policy:
    """How a client's notifications are delivered."""

    group_by: tuple[str, ...]  # a subset of GROUP_BY_FIELDS, in its order
    group_wait_seconds: int
    group_interval_seconds: int
    max_emails_per_hour: int | None  # None: the platform's default (a setting of the sender)


def default_policy(settings: PolicySettings) -> Policy:
    """The policy of a client without one of its own, as the platform's settings say (by
    default one group per set of recipients, the first email after 10 s, then at most one
    digest per group every 5 minutes), checked as a client's would be."""
    return policy_fields(settings.default_group_by, settings.default_group_wait_seconds,
                         settings.default_group_interval_seconds, 0)


def policy_fields(group_by: Sequence[str], group_wait_seconds: int, group_interval_seconds: int,
                  max_emails_per_hour: int) -> Policy:
    """A request's policy, checked; `group_by` in GROUP_BY_FIELDS' order without repeats, and
    `max_emails_per_hour` 0 (the platform's default) as None."""
    unknown = [field for field in group_by if field not in GROUP_BY_FIELDS]
    if unknown:
        raise InvalidField("group_by", f"unknown field {unknown[0]!r} (expected any of {', '.join(GROUP_BY_FIELDS)})")
    if not 0 <= group_wait_seconds <= MAX_GROUP_WAIT_SECONDS:
        raise InvalidField("group_wait_seconds", f"{group_wait_seconds} is not between 0 and {MAX_GROUP_WAIT_SECONDS}")
    if not 1 <= group_interval_seconds <= MAX_GROUP_INTERVAL_SECONDS:
        raise InvalidField("group_interval_seconds",
                           f"{group_interval_seconds} is not between 1 and {MAX_GROUP_INTERVAL_SECONDS}")
    if not 0 <= max_emails_per_hour <= MAX_EMAILS_PER_HOUR:
        raise InvalidField("max_emails_per_hour", f"{max_emails_per_hour} is not between 1 and {MAX_EMAILS_PER_HOUR}"
                                                  " (0: the platform's default)")
    return Policy(tuple(field for field in GROUP_BY_FIELDS if field in group_by), group_wait_seconds,
                  group_interval_seconds, max_emails_per_hour or None)
