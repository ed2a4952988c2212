"""The sender's reads and writes for delivery policies: new notifications to route, the
clients' policies and silences, silencing, digests opened and joined, the per-hour email
counts, due digests claimed fairly under a lease, and their outcomes recorded with their
members'. Each is one statement (or one short transaction); no lock is held while mail is
sent. The semantics are docs/architecture/ARCHITECTURE.md's "Delivery policy"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg
from google.protobuf.message import DecodeError

from alerting.common.vocabulary import severity_name
from alerting.rules.policies import Policy
from alerting.rules.silences import Matchers
from alerting.sender.outcomes import Decision, RecipientStatus
from alerting.sender.routing import Notified, Silence
from alerting.v1 import alert_pb2

# New: never attempted, not in a digest, not leased. Attempted ones are the retry scheduler's.
NEW = """
SELECT notification_id, client_id, alert, rule_ids, emails FROM notifications
WHERE notification_id = ANY($1::uuid[]) AND status = 'PENDING' AND digest_id IS NULL AND attempts = 0
  AND lease_until IS NULL
"""
POLICIES = """
SELECT client_id, group_by, group_wait_seconds, group_interval_seconds, max_emails_per_hour
FROM notification_policies WHERE client_id = ANY($1::uuid[])
"""
# Silences that are or will be active.
SILENCES = """
SELECT silence_id, client_id, severity, source, name, starts_at, ends_at, expired_at FROM silences
WHERE client_id = ANY($1::uuid[]) AND ends_at > now() AND (expired_at IS NULL OR expired_at > now())
"""
SILENCE = """
UPDATE notifications AS n SET status = 'SILENCED', silenced_by = s.silence_id, digest_id = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::uuid[]) AS s(notification_id, silence_id)
WHERE n.notification_id = s.notification_id AND n.status = 'PENDING' AND n.attempts = 0 AND n.lease_until IS NULL
"""
LAST_FLUSHED = """
SELECT client_id, group_key, max(flushed_at) AS flushed_at FROM digests
WHERE (client_id, group_key) IN (SELECT * FROM unnest($1::uuid[], $2::text[])) AND flushed_at IS NOT NULL
GROUP BY client_id, group_key
"""
OPEN = """
INSERT INTO digests (client_id, group_key, recipients, next_attempt_at)
SELECT client_id, group_key, string_to_array(recipients, ','), due
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS g(client_id, group_key, recipients, due)
ON CONFLICT (client_id, group_key) WHERE status = 'PENDING' AND attempts = 0 DO NOTHING
"""
# Held until the joins commit, so that no claim freezes a digest while notifications join it.
LOCK_OPEN = """
SELECT digest_id, client_id, group_key FROM digests
WHERE (client_id, group_key) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
  AND status = 'PENDING' AND attempts = 0
FOR SHARE
"""
JOIN = """
UPDATE notifications AS n SET digest_id = j.digest_id, updated_at = now()
FROM unnest($1::uuid[], $2::uuid[]) AS j(notification_id, digest_id)
WHERE n.notification_id = j.notification_id AND n.status = 'PENDING' AND n.digest_id IS NULL AND n.attempts = 0
  AND n.lease_until IS NULL
"""
SENDS = """
SELECT client_id, email, sent_at FROM email_sends
WHERE (client_id, email) IN (SELECT * FROM unnest($1::uuid[], $2::text[])) AND sent_at > now() - interval '1 hour'
"""
PRUNE_SENDS = "DELETE FROM email_sends WHERE sent_at < now() - interval '1 hour'"
DUE_OPEN = """
SELECT digest_id, client_id, recipients FROM digests
WHERE status = 'PENDING' AND attempts = 0 AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
"""
POSTPONE = """
UPDATE digests AS d SET next_attempt_at = p.at, updated_at = now()
FROM unnest($1::uuid[], $2::timestamptz[]) AS p(digest_id, at)
WHERE d.digest_id = p.digest_id AND d.status = 'PENDING' AND d.attempts = 0
"""
# Fair: each client's most overdue digest first, then each one's second, and so on. Retries,
# and open digests found within their recipients' limits ($4). The outer conditions are
# checked again on the locked rows, so two senders never both win one.
CLAIM = """
UPDATE digests SET lease_until = now() + make_interval(secs => $1), leased_by = $3, attempts = attempts + 1,
                   flushed_at = coalesce(flushed_at, now()), updated_at = now()
WHERE digest_id IN (
    SELECT digest_id FROM (
        SELECT digest_id, next_attempt_at,
               row_number() OVER (PARTITION BY client_id ORDER BY next_attempt_at) AS turn
        FROM digests
        WHERE status = 'PENDING' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
          AND (attempts > 0 OR digest_id = ANY($4::uuid[]))
    ) AS due ORDER BY turn, next_attempt_at LIMIT $2)
  AND status = 'PENDING' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
  AND (attempts > 0 OR digest_id = ANY($4::uuid[]))
RETURNING digest_id, client_id, recipients, attempts, created_at, lease_until
"""
MEMBERS = """
SELECT notification_id, digest_id, alert, rule_ids, trace_context FROM notifications
WHERE digest_id = ANY($1::uuid[]) AND status = 'PENDING'
ORDER BY created_at, notification_id
"""
DONE_RECIPIENTS = """
SELECT digest_id, email, status FROM digest_recipients
WHERE digest_id = ANY($1::uuid[]) AND status IN ('SENT', 'FAILED')
"""
SILENCE_DIGEST = """
UPDATE digests SET status = 'SILENCED', lease_until = NULL, leased_by = NULL, updated_at = now()
WHERE digest_id = $1 AND lease_until = $2 AND status = 'PENDING'
"""
RELEASE = """
UPDATE digests SET lease_until = NULL, leased_by = NULL WHERE leased_by = $1 AND status = 'PENDING'
"""
RECORD = """
WITH decided AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS d(digest_id, lease_until, status, failure, last_error, next_attempt_at)
), recorded AS (
    UPDATE digests AS g
    SET status = d.status, failure = d.failure, last_error = d.last_error,
        next_attempt_at = coalesce(d.next_attempt_at, g.next_attempt_at), lease_until = NULL, leased_by = NULL,
        sent_at = CASE WHEN d.status = 'SENT' THEN now() END, updated_at = now()
    FROM decided AS d
    WHERE g.digest_id = d.digest_id AND g.lease_until = d.lease_until AND g.status = 'PENDING'
    RETURNING g.digest_id, g.client_id, g.attempts, g.status, g.failure
), members AS (
    UPDATE notifications AS n
    SET status = r.status, failure = r.failure, sent_at = CASE WHEN r.status = 'SENT' THEN now() END,
        updated_at = now()
    FROM recorded AS r, unnest($7::uuid[], $8::uuid[]) AS m(notification_id, digest_id)
    WHERE r.status <> 'PENDING' AND m.digest_id = r.digest_id AND n.notification_id = m.notification_id
      AND n.digest_id = r.digest_id AND n.status = 'PENDING'
), outcomes AS (
    SELECT * FROM unnest($9::uuid[], $10::text[], $11::text[], $12::text[]) AS o(digest_id, email, status, response)
), sends AS (
    INSERT INTO email_sends (client_id, email)
    SELECT r.client_id, o.email FROM outcomes AS o JOIN recorded AS r USING (digest_id) WHERE o.status = 'SENT'
)
INSERT INTO digest_recipients AS dr (digest_id, email, status, response, attempts)
SELECT o.digest_id, o.email, o.status, o.response, r.attempts FROM outcomes AS o JOIN recorded AS r USING (digest_id)
ON CONFLICT (digest_id, email) DO UPDATE
SET status = excluded.status, response = excluded.response, attempts = excluded.attempts, updated_at = now()
"""


@dataclass(frozen=True)
class NewNotification:
    notified: Notified
    # False when its stored alert does not parse: no policy can place it, and sent alone
    # it ends FAILED with the reason (a row written by something else than the aggregator).
    readable: bool


@dataclass(frozen=True)
class Member:
    notification_id: str
    alert: alert_pb2.Alert
    rule_ids: tuple[str, ...]
    trace_context: str


@dataclass(frozen=True)
class ClaimedDigest:
    """A digest this sender holds the lease of, with its members and recipients."""

    digest_id: str
    client_id: str
    recipients: tuple[str, ...]
    attempts: int  # this attempt included
    age_from: datetime
    lease_until: datetime
    members: tuple[Member, ...]
    done: dict[str, RecipientStatus]

    def without(self, notification_ids: Mapping[str, object]) -> ClaimedDigest:
        return replace(self, members=tuple(m for m in self.members if m.notification_id not in notification_ids))


async def new_notifications(pool: asyncpg.Pool, notification_ids: Sequence[str]) -> list[NewNotification]:
    rows = await pool.fetch(NEW, list(notification_ids))
    found = []
    for row in rows:
        alert = alert_pb2.Alert()
        try:
            alert.ParseFromString(row["alert"])
        except DecodeError:
            readable = False
        else:
            readable = True
        found.append(NewNotification(Notified(
            str(row["notification_id"]), str(row["client_id"]), severity_name(alert.severity), alert.source,
            alert.name, tuple(str(rule_id) for rule_id in row["rule_ids"]), tuple(row["emails"])), readable))
    return found


async def policies(pool: asyncpg.Pool, client_ids: Sequence[str], default: Policy) -> dict[str, Policy]:
    """Each client's policy: its own, or `default`."""
    chosen = dict.fromkeys(client_ids, default)
    for row in await pool.fetch(POLICIES, list(client_ids)):
        chosen[str(row["client_id"])] = Policy(tuple(row["group_by"]), row["group_wait_seconds"],
                                               row["group_interval_seconds"], row["max_emails_per_hour"])
    return chosen


async def silences(pool: asyncpg.Pool, client_ids: Sequence[str]) -> dict[str, list[Silence]]:
    found: dict[str, list[Silence]] = {}
    for row in await pool.fetch(SILENCES, list(client_ids)):
        found.setdefault(str(row["client_id"]), []).append(Silence(
            str(row["silence_id"]), Matchers(row["severity"], row["source"], row["name"]), row["starts_at"],
            row["ends_at"], row["expired_at"]))
    return found


async def silence(pool: asyncpg.Pool, silenced: Mapping[str, str]) -> None:
    """Notification id → the silence that mutes it."""
    if silenced:
        await pool.execute(SILENCE, list(silenced), list(silenced.values()))


async def last_flushed(pool: asyncpg.Pool, groups: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    rows = await pool.fetch(LAST_FLUSHED, [client for client, _ in groups], [key for _, key in groups])
    return {(str(row["client_id"]), row["group_key"]): row["flushed_at"] for row in rows}


async def join(pool: asyncpg.Pool, joining: Mapping[str, tuple[str, str]],
               opened: Mapping[tuple[str, str], tuple[tuple[str, ...], datetime]]) -> None:
    """Notification id → its (client, group key) joins the group's open digest, opened due
    when `opened` says (its recipients, its due time) if the group has none."""
    if not joining:
        return
    groups = list(opened)
    async with pool.acquire() as connection, connection.transaction():
        for _ in range(3):  # a digest claimed between its opening and the lock: open another
            await connection.execute(
                OPEN, [client for client, _ in groups], [key for _, key in groups],
                [",".join(opened[group][0]) for group in groups], [opened[group][1] for group in groups])
            digests = {(str(row["client_id"]), row["group_key"]): row["digest_id"] for row in await connection.fetch(
                LOCK_OPEN, [client for client, _ in groups], [key for _, key in groups])}
            groups = [group for group in groups if group not in digests]
            if not groups:
                break
        else:
            raise RuntimeError("no open digest for groups claimed over and over: " + repr(groups[:3]))
        await connection.execute(JOIN, list(joining), [digests[group] for group in joining.values()])


async def sends_within_hour(
    pool: asyncpg.Pool, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[datetime]]:
    """(client, recipient) → the times of its emails in the last hour."""
    found: dict[tuple[str, str], list[datetime]] = {pair: [] for pair in pairs}
    for row in await pool.fetch(SENDS, [client for client, _ in pairs], [email for _, email in pairs]):
        found[(str(row["client_id"]), row["email"])].append(row["sent_at"])
    return found


async def prune_sends(pool: asyncpg.Pool) -> None:
    await pool.execute(PRUNE_SENDS)


async def due_open(pool: asyncpg.Pool) -> list[tuple[str, str, tuple[str, ...]]]:
    """(digest, client, recipients) of every open digest that is due."""
    return [(str(row["digest_id"]), str(row["client_id"]), tuple(row["recipients"]))
            for row in await pool.fetch(DUE_OPEN)]


async def postpone(pool: asyncpg.Pool, until: Mapping[str, datetime]) -> None:
    if until:
        await pool.execute(POSTPONE, list(until), list(until.values()))


async def claim(pool: asyncpg.Pool, lease_seconds: float, limit: int, owner: str,
                allowed: Sequence[str]) -> list[ClaimedDigest]:
    """Lease up to `limit` due digests: retries, and the open ones of `allowed`."""
    rows = await pool.fetch(CLAIM, lease_seconds, limit, owner, list(allowed))
    if not rows:
        return []
    ids = [row["digest_id"] for row in rows]
    members: dict[str, list[Member]] = {}
    for row in await pool.fetch(MEMBERS, ids):
        members.setdefault(str(row["digest_id"]), []).append(Member(
            str(row["notification_id"]), alert_pb2.Alert.FromString(row["alert"]),
            tuple(str(rule_id) for rule_id in row["rule_ids"]), row["trace_context"] or ""))
    done: dict[str, dict[str, RecipientStatus]] = {}
    for row in await pool.fetch(DONE_RECIPIENTS, ids):
        done.setdefault(str(row["digest_id"]), {})[row["email"]] = RecipientStatus(row["status"])
    return [ClaimedDigest(
        str(row["digest_id"]), str(row["client_id"]), tuple(row["recipients"]), row["attempts"], row["created_at"],
        row["lease_until"], tuple(members.get(str(row["digest_id"]), ())), done.get(str(row["digest_id"]), {}))
        for row in rows]


async def release_leases(pool: asyncpg.Pool, owner: str) -> int:
    result = await pool.execute(RELEASE, owner)
    return int(result.split()[-1])


async def record(pool: asyncpg.Pool, decisions: Sequence[tuple[ClaimedDigest, Decision]]) -> None:
    """Each digest's decision, its recipients' outcomes and its emails; once it is final,
    its members take its status. Only while the lease is still this sender's."""
    if not decisions:
        return
    members = [(member.notification_id, digest.digest_id) for digest, _ in decisions for member in digest.members]
    outcomes = [(digest.digest_id, outcome) for digest, decision in decisions for outcome in decision.recipients]
    await pool.execute(
        RECORD,
        [digest.digest_id for digest, _ in decisions],
        [digest.lease_until for digest, _ in decisions],
        [decision.status.value for _, decision in decisions],
        [decision.failure for _, decision in decisions],
        [decision.last_error for _, decision in decisions],
        [decision.next_attempt_at for _, decision in decisions],
        [notification_id for notification_id, _ in members],
        [digest_id for _, digest_id in members],
        [digest_id for digest_id, _ in outcomes],
        [outcome.email for _, outcome in outcomes],
        [outcome.status.value for _, outcome in outcomes],
        [outcome.response for _, outcome in outcomes],
    )



async def silence_digest(pool: asyncpg.Pool, digest: ClaimedDigest) -> None:
    """A digest whose every member a silence muted when it was due: sent to no one."""
    await pool.execute(SILENCE_DIGEST, digest.digest_id, digest.lease_until)
