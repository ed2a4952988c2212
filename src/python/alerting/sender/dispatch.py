"""What the sender does with each notification, by its tenant's policy: silence it, send it
alone at once, or put it in a digest; the retry scheduler of notifications sent alone; and
the digest scheduler, which sends due digests fairly across tenants within each recipient's
hourly limit. The decisions are routing.py's (pure), the SQL store.py's and digests.py's,
the sending delivery.py's. Semantics: docs/architecture/ARCHITECTURE.md, "Delivery policy".
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter as Metric

from alerting.common import failpoints, telemetry
from alerting.common.kafka import Delivery
from alerting.common.settings import SenderSettings, secret_value
from alerting.common.vocabulary import severity_name
from alerting.rules.policies import Policy, default_policy
from alerting.rules.receivers import Sealer, receiver_of
from alerting.sender import digests, store
from alerting.sender.delivery import EmailSender, Outgoing
from alerting.sender.digests import ClaimedDigest
from alerting.sender.email_message import render_digest, render_email
from alerting.sender.notify.documents import Delivered
from alerting.sender.notify.targets import Target, Unusable, targets
from alerting.sender.outcomes import Decision
from alerting.sender.recorder import DecisionRecorder
from alerting.sender.routing import Route, Way, allowed_at, due_at, is_immediate, route, silencing, take_budget
from alerting.sender.store import ClaimedNotification
from alerting.v1 import alert_pb2, events_pb2

log = logging.getLogger(__name__)
SILENCED = Metric("alerting_notifications_silenced_total", "Notifications a silence muted, by client.", ["client_id"])
THROTTLED = Metric(
    "alerting_notifications_throttled_total",
    "Notifications and digests held back by a recipient's hourly limit (they wait, never dropped), by client.",
    ["client_id"])
DIGESTS = Metric("alerting_digests_total", "Digests sent (their first attempt), by how many notifications they hold.",
                 ["size"])
ALONE = Route(Way.ALONE)
# Members of a digest whose traces its email's span links to.
LINKED_TRACES = 32
PRUNE_EVERY_SECONDS = 60.0


def size_bucket(members: int) -> str:
    return next(label for limit, label in ((1, "1"), (10, "2-10"), (100, "11-100"), (1000, "101-1000"))
                if members <= limit) if members <= 1000 else "1001+"


class Dispatcher:
    def __init__(self, settings: SenderSettings, pool: asyncpg.Pool, sender: EmailSender) -> None:
        self.settings = settings
        self.pool = pool
        self.sender = sender
        self.default_policy = default_policy(settings)
        # Whose leases these are: the instance id survives a restart, so a restarted sender
        # can free what it held; without one, a name no other process has.
        self.owner = settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        # Emails decided but not recorded yet, per (client, recipient): the hourly limit
        # counts them, so that this sender's own concurrent decisions do not overshoot it.
        self.reserved: Counter[tuple[str, str]] = Counter()
        self.notifications: DecisionRecorder[ClaimedNotification] = DecisionRecorder(
            self.record_notifications, lambda notification: notification.notification_id)
        self.digests: DecisionRecorder[ClaimedDigest] = DecisionRecorder(
            self.record_digests, lambda digest: digest.digest_id)
        self.pruned_at = 0.0
        key = secret_value(settings.receiver_secret_key)
        self.sealer = Sealer(key) if key else None
        failpoints.unfinished(self.unfinished)

    def unfinished(self) -> list[str]:
        """For the record of a kill at a failpoint: the emails a restart sends again for
        sure (accepted, their record not begun) and those it may (on the wire, or their
        record under way)."""
        accepted = self.notifications.queued() | self.digests.queued()
        unsure = self.sender.unanswered | self.notifications.writing | self.digests.writing
        return [f"accepted {id_}" for id_ in sorted(accepted)] + [f"unsure {id_}" for id_ in sorted(unsure)]

    async def release_own_leases(self) -> None:
        """At start-up: free the leases this instance held when it last died."""
        if self.settings.instance_id:
            released = (await store.release_leases(self.pool, self.owner)
                        + await digests.release_leases(self.pool, self.owner))
            if released:
                log.warning("released %d leases of notifications and digests this sender held when it stopped",
                            released)

    # ------------------------------------------------------------ notifications.ready
    async def handle(self, deliveries: list[Delivery[events_pb2.NotificationReady]]) -> None:
        """The durable step of a `notifications.ready` batch: each new notification silenced,
        sent alone (and its outcome recorded) or put in a digest. One that is no longer new
        (a redelivered message) is skipped: it is SENT, or its retries are the scheduler's."""
        contexts = {d.message.notification_id: d.trace_context for d in deliveries}
        new = await digests.new_notifications(self.pool, list(contexts))
        if not new:
            return
        clients = sorted({item.notified.client_id for item in new})
        policies = await digests.policies(self.pool, clients, self.default_policy)
        silences = await digests.silences(self.pool, clients)
        now = datetime.now(UTC)
        immediate = [item.notified for item in new if is_immediate(policies[item.notified.client_id])]
        sends = await digests.sends_within_hour(self.pool, sorted(
            {(item.client_id, email) for item in immediate for email in item.emails}))
        left = {pair: self.limit(policies[pair[0]]) - len(times) - self.reserved[pair] for pair, times in sends.items()}
        within = dict(zip((item.notification_id for item in immediate), take_budget(immediate, left), strict=True))
        silenced: dict[str, str] = {}
        alone: list[str] = []
        joining: dict[str, tuple[str, str]] = {}
        opened: dict[tuple[str, str], tuple[tuple[str, ...], datetime]] = {}
        throttled_due: dict[tuple[str, str], datetime] = {}
        for item in new:
            notified = item.notified
            policy = policies[notified.client_id]
            way = route(notified, policy, silences.get(notified.client_id, ()), now,
                        within_limit=within.get(notified.notification_id, False)) if item.readable else ALONE
            if way.way == Way.SILENCED:
                assert way.silence_id is not None
                silenced[notified.notification_id] = way.silence_id
                SILENCED.labels(notified.client_id).inc()
            elif way.way == Way.ALONE:
                alone.append(notified.notification_id)
                self.reserve(notified.client_id, notified.emails)
            else:
                assert way.group_key is not None
                group = (notified.client_id, way.group_key)
                joining[notified.notification_id] = group
                opened.setdefault(group, (tuple(sorted(set(notified.emails))), now))
                if is_immediate(policy):  # over the limit: it waits until the limit allows
                    THROTTLED.labels(notified.client_id).inc()
                    throttled_due[group] = allowed_at(self.limit(policy), {
                        email: sends[(notified.client_id, email)] for email in notified.emails}, now)
        if opened:
            flushed = await digests.last_flushed(self.pool, list(opened))
            for group, (recipients, _) in opened.items():
                due = throttled_due.get(group) or due_at(policies[group[0]], now, flushed.get(group))
                opened[group] = (recipients, due)
        await digests.silence(self.pool, silenced)
        await digests.join(self.pool, joining, opened)
        claimed = await store.claim(self.pool, alone, self.settings.delivery_lease_seconds, self.owner)
        self.release_unclaimed(new, alone, claimed)
        await self.deliver_alone(claimed, contexts)

    async def deliver_alone(self, claimed: Sequence[ClaimedNotification],
                            contexts: Mapping[str, otel_context.Context]) -> None:
        found = await self.receivers_of(notification.emails for notification in claimed)
        await self.sender.deliver([self.alone(notification, contexts, found) for notification in claimed],
                                  self.notifications)

    async def receivers_of(self, recipients: Iterable[Sequence[str]]) -> dict[str, Target | Unusable]:
        """The receivers among these recipients, read now."""
        ids = {receiver_id for each in recipients for recipient in each
               if (receiver_id := receiver_of(recipient)) is not None}
        return await targets(self.pool, ids, self.sealer)

    def alone(self, notification: ClaimedNotification, contexts: Mapping[str, otel_context.Context],
              found: Mapping[str, Target | Unusable]) -> Outgoing[ClaimedNotification]:
        def parsed() -> alert_pb2.Alert:
            alert = alert_pb2.Alert()
            alert.ParseFromString(notification.alert)
            return alert

        def render(addresses: Sequence[str]) -> bytes:
            return render_email(notification.notification_id, self.settings.smtp_sender, list(addresses), parsed(),
                                list(notification.rule_ids))

        def delivered() -> list[Delivered]:
            return [Delivered(notification.notification_id, parsed(), notification.rule_ids)]

        parent = contexts.get(notification.notification_id) or telemetry.context_from_traceparent(
            notification.trace_context)
        return Outgoing(notification, "notification", notification.notification_id, notification.emails,
                        notification.done, notification.attempts, notification.age_from, render, parent,
                        client_id=notification.client_id, delivered=delivered, targets=found)

    async def retry_due(self, stop: asyncio.Event) -> None:
        """The retry scheduler of notifications sent alone: attempts those whose next attempt
        is due, until stopped. A failure (Postgres out of reach) is logged and the next poll
        tries again."""
        await self.poll_until_stopped(stop, self.retry_once, "retrying due notifications",
                                      self.settings.retry_poll_seconds)

    async def retry_once(self) -> int:
        claimed = await store.claim_due(self.pool, self.settings.delivery_lease_seconds, self.settings.retry_batch,
                                        self.owner)
        for notification in claimed:
            self.reserve(notification.client_id, notification.emails)
        await self.deliver_alone(claimed, {})
        return len(claimed)

    # ------------------------------------------------------------ digests
    async def send_due_digests(self, stop: asyncio.Event) -> None:
        """The digest scheduler: sends the digests that are due, until stopped. A failure is
        logged and the next poll tries again."""
        await self.poll_until_stopped(stop, self.send_digests_once, "sending due digests",
                                      self.settings.digest_poll_seconds)

    async def send_digests_once(self) -> int:
        if time.monotonic() - self.pruned_at > PRUNE_EVERY_SECONDS:
            await digests.prune_sends(self.pool)
            self.pruned_at = time.monotonic()
        allowed = await self.hold_back_over_limit()
        claimed = await digests.claim(self.pool, self.settings.delivery_lease_seconds, self.settings.retry_batch,
                                      self.owner, allowed)
        due = []
        for digest in await self.silence_members(claimed):
            if not digest.members:
                await digests.silence_digest(self.pool, digest)
                continue
            if digest.attempts == 1:
                DIGESTS.labels(size_bucket(len(digest.members))).inc()
            self.reserve(digest.client_id, digest.recipients)
            due.append(digest)
        found = await self.receivers_of(digest.recipients for digest in due)
        await self.sender.deliver([self.digest(digest, found) for digest in due], self.digests)
        return len(claimed)

    async def hold_back_over_limit(self) -> list[str]:
        """The open digests that are due and whose every recipient is under its hourly limit;
        the others stay open, due when the limit allows."""
        due = await digests.due_open(self.pool)
        if not due:
            return []
        policies = await digests.policies(self.pool, sorted({client for _, client, _ in due}), self.default_policy)
        sends = await digests.sends_within_hour(self.pool, sorted(
            {(client, email) for _, client, recipients in due for email in recipients}))
        now = datetime.now(UTC)
        allowed: list[str] = []
        until: dict[str, datetime] = {}
        for digest_id, client, recipients in due:
            # This sender's emails decided but not recorded, and this pass's, count as sent now.
            times = {email: [*sends[(client, email)], *[now] * self.reserved[(client, email)]] for email in recipients}
            at = allowed_at(self.limit(policies[client]), times, now)
            if at > now:
                until[digest_id] = at
                THROTTLED.labels(client).inc()
            else:
                allowed.append(digest_id)
                for email in recipients:
                    sends[(client, email)].append(now)
        await digests.postpone(self.pool, until)
        return allowed

    async def silence_members(self, claimed: Sequence[ClaimedDigest]) -> list[ClaimedDigest]:
        """Due for the first time, a digest's members that a silence made while they waited
        mutes are silenced, and leave it."""
        first = [digest for digest in claimed if digest.attempts == 1]
        if not first:
            return list(claimed)
        silences = await digests.silences(self.pool, sorted({digest.client_id for digest in first}))
        now = datetime.now(UTC)
        muted: dict[str, str] = {}
        for digest in first:
            for member in digest.members:
                alert = member.alert
                silence_id = silencing(silences.get(digest.client_id, ()), severity_name(alert.severity),
                                       alert.source, alert.name, now)
                if silence_id is not None:
                    muted[member.notification_id] = silence_id
                    SILENCED.labels(digest.client_id).inc()
        await digests.silence(self.pool, muted)
        return [digest if digest.attempts > 1 else digest.without(muted) for digest in claimed]

    def digest(self, digest: ClaimedDigest, found: Mapping[str, Target | Unusable]) -> Outgoing[ClaimedDigest]:
        def render(addresses: Sequence[str]) -> bytes:
            return render_digest(digest.digest_id, self.settings.smtp_sender, list(addresses),
                                 [(member.alert, member.rule_ids) for member in digest.members])

        def delivered() -> list[Delivered]:
            return [Delivered(member.notification_id, member.alert, member.rule_ids) for member in digest.members]

        # A digest joins many traces: its send continues its first notification's, and links
        # to the others'.
        traced = [context for member in digest.members[:LINKED_TRACES + 1]
                  if trace.get_current_span(context := telemetry.context_from_traceparent(
                      member.trace_context)).get_span_context().is_valid]
        parent = traced[0] if traced else otel_context.Context()
        links = [trace.Link(trace.get_current_span(context).get_span_context()) for context in traced[1:]]
        return Outgoing(digest, "digest", digest.digest_id, digest.recipients, digest.done, digest.attempts,
                        digest.age_from, render, parent, {"alerting.notifications": len(digest.members)}, links,
                        client_id=digest.client_id, delivered=delivered, targets=found)

    # ------------------------------------------------------------ the hourly limit
    def limit(self, policy: Policy) -> int:
        return policy.max_emails_per_hour or self.settings.max_emails_per_hour

    def reserve(self, client_id: str, emails: Iterable[str]) -> None:
        for email in set(emails):
            self.reserved[(client_id, email)] += 1

    def release(self, client_id: str, emails: Iterable[str]) -> None:
        for email in set(emails):
            self.reserved[(client_id, email)] -= 1
            if self.reserved[(client_id, email)] <= 0:
                del self.reserved[(client_id, email)]

    def release_unclaimed(self, new: Sequence[digests.NewNotification], alone: Sequence[str],
                          claimed: Sequence[ClaimedNotification]) -> None:
        """What was reserved for notifications another sender took meanwhile."""
        taken = {notification.notification_id for notification in claimed}
        untaken = set(alone) - taken
        for item in new:
            if item.notified.notification_id in untaken:
                self.release(item.notified.client_id, item.notified.emails)

    async def record_notifications(self, decided: Sequence[tuple[ClaimedNotification, Decision]]) -> None:
        try:
            await store.record(self.pool, decided)
        finally:
            for notification, _ in decided:
                self.release(notification.client_id, notification.emails)

    async def record_digests(self, decided: Sequence[tuple[ClaimedDigest, Decision]]) -> None:
        try:
            await digests.record(self.pool, decided)
        finally:
            for digest, _ in decided:
                self.release(digest.client_id, digest.recipients)

    # ------------------------------------------------------------ polling
    async def poll_until_stopped(self, stop: asyncio.Event, once: Callable[[], Awaitable[int]], what: str,
                                 every_seconds: float) -> None:
        """`once` until stopped, again at once while it takes a whole batch, else after
        `every_seconds`."""
        while not stop.is_set():
            try:
                taken = await once()
            except Exception as error:
                log.warning("%s failed, trying again: %r", what, error)
                taken = 0
            if taken < self.settings.retry_batch:
                try:
                    await asyncio.wait_for(stop.wait(), every_seconds)
                except TimeoutError:
                    pass
