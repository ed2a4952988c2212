"""Notifications in Postgres, as the operators see them: by tenant, status and digest, each
with its recipients' outcomes and the email that delivered it; and a FAILED one tried again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from alerting.rule_service.errors import FailedPrecondition
from alerting.rule_service.store.rows import page, visible_row
from alerting.v1 import alert_pb2
from alerting.v1 import notification_service_pb2 as api

COLUMNS = ("notification_id, client_id, alert_id, rule_ids, emails, status, failure, last_error, attempts,"
           " next_attempt_at, created_at, sent_at, trace_context, digest_id, silenced_by")
STATUSES = {
    api.NOTIFICATION_STATUS_PENDING: "PENDING",
    api.NOTIFICATION_STATUS_SENT: "SENT",
    api.NOTIFICATION_STATUS_FAILED: "FAILED",
    api.NOTIFICATION_STATUS_SILENCED: "SILENCED",
}
STATUS_VALUES = {name: value for value, name in STATUSES.items()}
RECIPIENT_STATUS_VALUES = {
    "SENT": api.RECIPIENT_STATUS_SENT,
    "FAILED": api.RECIPIENT_STATUS_FAILED,
    "DEFERRED": api.RECIPIENT_STATUS_DEFERRED,
}
LIST = f"""
SELECT {COLUMNS} FROM notifications
WHERE ($1::uuid IS NULL OR client_id = $1) AND ($2::text IS NULL OR status = $2)
  AND ($6::uuid IS NULL OR digest_id = $6)
  AND ($3::timestamptz IS NULL OR (created_at, notification_id) < ($3, $4::uuid))
ORDER BY created_at DESC, notification_id DESC LIMIT $5
"""
# FAILED back to PENDING and due now, with the recipients that did not receive it open
# again; its maximum age counts from now. One that failed in a digest is retried alone.
RETRY = """
WITH retried AS (
    UPDATE notifications SET status = 'PENDING', failure = NULL, last_error = NULL, next_attempt_at = now(),
        attempts = greatest(attempts, 1), retried_at = now(), lease_until = NULL, leased_by = NULL,
        digest_id = NULL, updated_at = now()
    WHERE notification_id = $1 AND status = 'FAILED' AND ($2::uuid IS NULL OR client_id = $2::uuid)
    RETURNING notification_id
), reopened AS (
    DELETE FROM notification_recipients
    WHERE notification_id IN (SELECT notification_id FROM retried) AND status <> 'SENT'
)
SELECT notification_id FROM retried
"""


def trace_id(trace_context: str | None) -> str:
    """The trace id of a W3C traceparent (version-traceid-spanid-flags); empty without one."""
    parts = (trace_context or "").split("-")
    return parts[1] if len(parts) == 4 else ""


def notification_message(row: Mapping[str, Any]) -> api.Notification:
    message = api.Notification(
        notification_id=str(row["notification_id"]), client_id=str(row["client_id"]), alert_id=row["alert_id"],
        rule_ids=[str(rule_id) for rule_id in row["rule_ids"]], emails=list(row["emails"]),
        status=STATUS_VALUES[row["status"]], failure=row["failure"] or "", last_error=row["last_error"] or "",
        attempts=row["attempts"], trace_id=trace_id(row["trace_context"]),
        digest_id=str(row["digest_id"] or ""), silenced_by=str(row["silenced_by"] or ""),
    )
    if row["status"] == "SENT":
        message.delivered_in = str(row["digest_id"] or row["notification_id"])
    message.next_attempt_at.FromDatetime(row["next_attempt_at"])
    message.created_at.FromDatetime(row["created_at"])
    if row["sent_at"] is not None:
        message.sent_at.FromDatetime(row["sent_at"])
    return message


async def list_page(pool: asyncpg.Pool, client_id: str | None, status: str | None, digest_id: str | None,
                    after: tuple[datetime, str] | None, size: int
                    ) -> tuple[list[api.Notification], tuple[datetime, str] | None]:
    """Notifications newest first after `after` (only `client_id`'s, `status` and
    `digest_id`'s, each when set); the last one's (created_at, notification_id) when more
    follow."""
    rows = await pool.fetch(LIST, client_id, status, after and after[0], after and after[1], size + 1, digest_id)
    return page(rows, size, notification_message, lambda row: (row["created_at"], str(row["notification_id"])))


async def get(pool: asyncpg.Pool, notification_id: str, visible_client: str | None) -> api.Notification:
    """The notification with its alert and recipients; NotFound when there is none (that
    the caller may see)."""
    row = await visible_row(pool, "notifications", f"{COLUMNS}, alert", "notification_id", notification_id,
                            visible_client)
    message = notification_message(row)
    message.alert.CopyFrom(alert_pb2.Alert.FromString(row["alert"]))
    # Sent in a digest, its recipients' outcomes are the digest's.
    recipients = (("digest_recipients", "digest_id", row["digest_id"]) if row["digest_id"] is not None
                  else ("notification_recipients", "notification_id", notification_id))
    for recipient in await pool.fetch(
        f"SELECT email, status, response, attempts, updated_at FROM {recipients[0]}"
        f" WHERE {recipients[1]} = $1 ORDER BY email", recipients[2],
    ):
        outcome = message.recipients.add(
            email=recipient["email"], status=RECIPIENT_STATUS_VALUES[recipient["status"]],
            response=recipient["response"], attempts=recipient["attempts"])
        outcome.updated_at.FromDatetime(recipient["updated_at"])
    return message


async def retry(pool: asyncpg.Pool, notification_id: str, visible_client: str | None) -> api.Notification:
    """The FAILED notification (only of `visible_client`, when set) due again now."""
    if await pool.fetchval(RETRY, notification_id, visible_client) is None:
        current = await get(pool, notification_id, visible_client)  # NotFound when there is none
        raise FailedPrecondition(f"notification_id: {notification_id} is {STATUSES[current.status]}, not FAILED")
    return await get(pool, notification_id, visible_client)
