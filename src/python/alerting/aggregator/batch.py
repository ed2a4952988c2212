"""Decoding `alerts.matched` and shaping a batch into one insert (pure, no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiokafka import ConsumerRecord

from alerting.common.kafka import InvalidEvent, decode
from alerting.v1 import events_pb2

# Well inside what one btree entry of the (client_id, alert_id) unique index can hold (2704
# bytes); a longer alert_id would fail its insert on every redelivery.
MAX_ALERT_ID_BYTES = 1024


def decode_alert_matched(record: ConsumerRecord) -> events_pb2.AlertMatched:
    event = decode(record, events_pb2.AlertMatched)
    _require_uuid(event.client_id, "client_id")
    if not event.alert.alert_id:
        raise InvalidEvent("alert.alert_id: missing")
    _require_storable(event.alert.alert_id, "alert.alert_id")
    if len(event.alert.alert_id.encode()) > MAX_ALERT_ID_BYTES:
        raise InvalidEvent(f"alert.alert_id: longer than {MAX_ALERT_ID_BYTES} bytes")
    if not event.rule_ids:
        raise InvalidEvent("rule_ids: empty")
    for position, rule_id in enumerate(event.rule_ids):
        _require_uuid(rule_id, f"rule_ids[{position}]")
    if not event.emails:
        raise InvalidEvent("emails: empty")
    if any("," in email for email in event.emails):
        raise InvalidEvent("emails: an address contains a comma")
    for position, email in enumerate(event.emails):
        _require_storable(email, f"emails[{position}]")
    return event


def _require_uuid(value: str, field: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError as error:
        raise InvalidEvent(f"{field}: not a UUID: {value!r}") from error


def _require_storable(value: str, field: str) -> None:
    """Postgres text cannot hold NUL: such a row would fail its insert on every redelivery."""
    if "\x00" in value:
        raise InvalidEvent(f"{field}: contains U+0000 (NUL), which Postgres text cannot store")


@dataclass(frozen=True)
class NotificationRow:
    client_id: str
    alert_id: str
    rule_ids: tuple[str, ...]
    emails: tuple[str, ...]
    alert: bytes
    trace_context: str


def unique_rows(rows: list[NotificationRow]) -> list[NotificationRow]:
    """One row per (client_id, alert_id): Postgres refuses to upsert one key twice in one
    statement, and a redelivered duplicate carries the same alert anyway. First wins."""
    seen: dict[tuple[str, str], NotificationRow] = {}
    for row in rows:
        seen.setdefault((row.client_id, row.alert_id), row)
    return list(seen.values())


def insert_arguments(rows: list[NotificationRow]) -> tuple[list[str] | list[bytes], ...]:
    """Column arrays for the unnest() insert; array columns travel comma-joined."""
    return (
        [row.client_id for row in rows],
        [row.alert_id for row in rows],
        [",".join(row.rule_ids) for row in rows],
        [",".join(row.emails) for row in rows],
        [row.alert for row in rows],
        [row.trace_context for row in rows],
    )
