"""The sender's reads and writes of `notifications` sent alone: claiming them under a lease
(a short statement, no lock held while mail is sent), then recording each one's decision,
its recipients' outcomes and its emails, only while the lease is still its own. Digests
are digests.py's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from alerting.sender.outcomes import Decision, RecipientStatus

_CLAIMED = ("notification_id, client_id, alert, rule_ids, emails, trace_context, attempts,"
            " coalesce(retried_at, created_at) AS age_from, lease_until")
# PENDING, due, not in a digest and not leased by another sender: leased and counted as one
# more attempt.
CLAIM = f"""
UPDATE notifications SET lease_until = now() + make_interval(secs => $2), leased_by = $3,
                         attempts = attempts + 1, updated_at = now()
WHERE notification_id = ANY($1::uuid[]) AND status = 'PENDING' AND digest_id IS NULL AND next_attempt_at <= now()
  AND (lease_until IS NULL OR lease_until < now())
RETURNING {_CLAIMED}
"""
# Retries that are due: rows an attempt left PENDING, or whose sender died holding the lease.
# Fair: each client's most overdue first, then each one's second, and so on; the outer
# conditions are checked again on the locked rows, so two senders never both win one.
CLAIM_DUE = f"""
UPDATE notifications SET lease_until = now() + make_interval(secs => $1), leased_by = $3,
                         attempts = attempts + 1, updated_at = now()
WHERE notification_id IN (
    SELECT notification_id FROM (
        SELECT notification_id, next_attempt_at,
               row_number() OVER (PARTITION BY client_id ORDER BY next_attempt_at) AS turn
        FROM notifications
        WHERE status = 'PENDING' AND attempts > 0 AND digest_id IS NULL AND next_attempt_at <= now()
          AND (lease_until IS NULL OR lease_until < now())
    ) AS due ORDER BY turn, next_attempt_at LIMIT $2)
  AND status = 'PENDING' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
RETURNING {_CLAIMED}
"""
# A restarted sender's own leases: the attempts they stood for died with it.
RELEASE = """
UPDATE notifications SET lease_until = NULL, leased_by = NULL WHERE leased_by = $1 AND status = 'PENDING'
"""
DONE_RECIPIENTS = """
SELECT notification_id, email, status FROM notification_recipients
WHERE notification_id = ANY($1::uuid[]) AND status IN ('SENT', 'FAILED')
"""
RECORD = """
WITH decided AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS d(notification_id, lease_until, status, failure, last_error, next_attempt_at)
), recorded AS (
    UPDATE notifications AS n
    SET status = d.status, failure = d.failure, last_error = d.last_error,
        next_attempt_at = coalesce(d.next_attempt_at, n.next_attempt_at), lease_until = NULL, leased_by = NULL,
        sent_at = CASE WHEN d.status = 'SENT' THEN now() END, updated_at = now()
    FROM decided AS d
    WHERE n.notification_id = d.notification_id AND n.lease_until = d.lease_until AND n.status = 'PENDING'
    RETURNING n.notification_id, n.client_id, n.attempts
), outcomes AS (
    SELECT * FROM unnest($7::uuid[], $8::text[], $9::text[], $10::text[]) AS o(notification_id, email, status, response)
), sends AS (
    -- For the per-hour limit of each client and recipient.
    INSERT INTO email_sends (client_id, email)
    SELECT r.client_id, o.email FROM outcomes AS o JOIN recorded AS r USING (notification_id) WHERE o.status = 'SENT'
)
INSERT INTO notification_recipients AS r (notification_id, email, status, response, attempts)
SELECT o.notification_id, o.email, o.status, o.response, recorded.attempts
FROM outcomes AS o JOIN recorded USING (notification_id)
ON CONFLICT (notification_id, email) DO UPDATE
SET status = excluded.status, response = excluded.response, attempts = excluded.attempts, updated_at = now()
"""


@dataclass(frozen=True)
class ClaimedNotification:
    """A notification this sender holds the lease of, with what its email is made of."""

    notification_id: str
    client_id: str
    alert: bytes
    rule_ids: tuple[str, ...]
    emails: tuple[str, ...]
    trace_context: str
    attempts: int  # this attempt included
    age_from: datetime  # its creation, or when an operator last retried it
    lease_until: datetime
    done: dict[str, RecipientStatus]  # recipients SENT or FAILED by earlier attempts


async def claim(
    pool: asyncpg.Pool, notification_ids: Sequence[str], lease_seconds: float, owner: str
) -> list[ClaimedNotification]:
    """Lease those of the notifications that are PENDING, due and not leased by another sender."""
    return await _claimed(pool, await pool.fetch(CLAIM, list(notification_ids), lease_seconds, owner))


async def claim_due(pool: asyncpg.Pool, lease_seconds: float, limit: int, owner: str) -> list[ClaimedNotification]:
    """Lease up to `limit` notifications whose retry is due, most overdue first."""
    return await _claimed(pool, await pool.fetch(CLAIM_DUE, lease_seconds, limit, owner))


async def release_leases(pool: asyncpg.Pool, owner: str) -> int:
    """Free the leases `owner` held when it died: its attempts can start again at once,
    rather than when the leases expire. Returns how many."""
    result = await pool.execute(RELEASE, owner)
    return int(result.split()[-1])


async def _claimed(pool: asyncpg.Pool, rows: list[asyncpg.Record]) -> list[ClaimedNotification]:
    if not rows:
        return []
    done: dict[str, dict[str, RecipientStatus]] = {}
    # A first attempt has no outcome before it (an operator's retry keeps attempts above 0).
    again = [row["notification_id"] for row in rows if row["attempts"] > 1]
    for row in await pool.fetch(DONE_RECIPIENTS, again) if again else ():
        done.setdefault(str(row["notification_id"]), {})[row["email"]] = RecipientStatus(row["status"])
    return [
        ClaimedNotification(
            notification_id=str(row["notification_id"]),
            client_id=str(row["client_id"]),
            alert=row["alert"],
            rule_ids=tuple(str(rule_id) for rule_id in row["rule_ids"]),
            emails=tuple(row["emails"]),
            trace_context=row["trace_context"] or "",
            attempts=row["attempts"],
            age_from=row["age_from"],
            lease_until=row["lease_until"],
            done=done.get(str(row["notification_id"]), {}),
        )
        for row in rows
    ]


async def record(pool: asyncpg.Pool, decisions: Sequence[tuple[ClaimedNotification, Decision]]) -> None:
    """Each notification's decision and its recipients' outcomes, in one statement; a
    notification whose lease expired meanwhile (another sender took it over) is left alone."""
    if not decisions:
        return
    outcomes = [(claimed.notification_id, outcome) for claimed, decision in decisions
                for outcome in decision.recipients]
    await pool.execute(
        RECORD,
        [claimed.notification_id for claimed, _ in decisions],
        [claimed.lease_until for claimed, _ in decisions],
        [decision.status.value for _, decision in decisions],
        [decision.failure for _, decision in decisions],
        [decision.last_error for _, decision in decisions],
        [decision.next_attempt_at for _, decision in decisions],
        [notification_id for notification_id, _ in outcomes],
        [outcome.email for _, outcome in outcomes],
        [outcome.status.value for _, outcome in outcomes],
        [outcome.response for _, outcome in outcomes],
    )
