"""Decoding `alerts.matched` and shaping a batch into one insert (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from alerting.common.kafka import InvalidEvent, decode
from alerting.common.validation import InvalidField, check_alert, email_address, require_canonical_uuid
from alerting.rules.receivers import receiver_of
from alerting.v1 import events_pb2


def decode_alert_matched(record: ConsumerRecord) -> events_pb2.AlertMatched:
    """A match the aggregator can store and the sender can send, or InvalidEvent: a value
    Postgres refuses (an over-long id, NUL) would fail its insert on every redelivery."""
    event = decode(record, events_pb2.AlertMatched)
    try:
        require_canonical_uuid(event.client_id, "client_id")
        check_alert(event.alert, datetime.now(UTC))
        if not event.rule_ids:
            raise InvalidField("rule_ids", "empty")
        for position, rule_id in enumerate(event.rule_ids):
            require_canonical_uuid(rule_id, f"rule_ids[{position}]")
        if not event.emails:
            raise InvalidField("emails", "empty")
        for position, email in enumerate(event.emails):
            field = f"emails[{position}]"
            receiver_id = receiver_of(email)
            if receiver_id is not None:
                require_canonical_uuid(receiver_id, field)
            elif email_address(email, field) != email:
                raise InvalidField(field, f"not normalized as the rule-service stores addresses: {email!r}")
            if "," in email:
                raise InvalidField(field, "contains a comma, which the insert joins addresses with")
    except InvalidField as error:
        raise InvalidEvent(str(error)) from error
    return event


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
