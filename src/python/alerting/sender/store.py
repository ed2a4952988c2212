"""The sender's reads and writes of `notifications`: claiming PENDING rows, and recording
which were sent and which the mail server refused for good."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

CLAIM = """
SELECT notification_id, alert, rule_ids, emails, trace_context FROM notifications
WHERE notification_id = ANY($1::uuid[]) AND status = 'PENDING'
ORDER BY notification_id
FOR UPDATE SKIP LOCKED
"""
MARK_SENT = """
UPDATE notifications SET status = 'SENT', sent_at = now(), updated_at = now()
WHERE notification_id = ANY($1::uuid[]) AND status = 'PENDING'
"""
MARK_FAILED = """
UPDATE notifications AS n SET status = 'FAILED', failure = refused.reason, updated_at = now()
FROM unnest($1::uuid[], $2::text[]) AS refused(notification_id, reason)
WHERE n.notification_id = refused.notification_id AND n.status = 'PENDING'
"""


@dataclass(frozen=True)
class PendingNotification:
    """What the email of a claimed row is made of."""

    notification_id: str
    alert: bytes
    rule_ids: tuple[str, ...]
    emails: tuple[str, ...]
    trace_context: str


async def claim(connection: asyncpg.Connection, notification_ids: Sequence[str]) -> list[PendingNotification]:
    """Lock those of the rows that are still PENDING and not locked by another sender, for
    the caller's transaction."""
    rows = await connection.fetch(CLAIM, list(notification_ids))
    return [
        PendingNotification(
            notification_id=str(row["notification_id"]),
            alert=row["alert"],
            rule_ids=tuple(str(rule_id) for rule_id in row["rule_ids"]),
            emails=tuple(row["emails"]),
            trace_context=row["trace_context"] or "",
        )
        for row in rows
    ]


async def record_outcomes(
    connection: asyncpg.Connection, sent: Sequence[str], refused: Mapping[str, str]
) -> None:
    """Mark the sent rows SENT, and the refused ones FAILED with the server's reason."""
    await connection.execute(MARK_SENT, list(sent))
    if refused:
        await connection.execute(MARK_FAILED, list(refused), list(refused.values()))
