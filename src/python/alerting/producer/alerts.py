"""Building alerts: parsing, validation and the stable alert id (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from alerting.common.topics import SCHEMA_VERSION
from alerting.common.validation import InvalidField, check_alert
from alerting.common.vocabulary import SEVERITY_VALUES
from alerting.v1 import alert_pb2, events_pb2


def parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidField("event_ts", f"not an ISO 8601 time: {value!r}") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stable_alert_id(severity: str, source: str, name: str, event_ts: datetime) -> str:
    """The same alert, published twice, gets the same id."""
    canonical = "\x1f".join([severity, source, name, event_ts.astimezone(UTC).isoformat(timespec="microseconds")])
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def build_alert(
    severity: str,
    source: str,
    name: str,
    event_ts: str | datetime | None = None,
    alert_id: str | None = None,
    context: Mapping[str, str] | None = None,
) -> alert_pb2.Alert:
    """An alert, checked as every consumer will check it; InvalidField names what is wrong."""
    severity = (severity or "").upper()
    if severity not in SEVERITY_VALUES:
        raise InvalidField("severity", f"unknown {severity!r} (expected LOW, MEDIUM, HIGH or CRITICAL)")
    timestamp = event_ts if isinstance(event_ts, datetime) else parse_time(event_ts)
    alert = alert_pb2.Alert(
        alert_id=alert_id or stable_alert_id(severity, source, name, timestamp),
        severity=SEVERITY_VALUES[severity],
        source=source,
        name=name,
        context=dict(context or {}),
    )
    alert.event_ts.FromDatetime(timestamp.astimezone(UTC).replace(tzinfo=None))
    check_alert(alert, datetime.now(UTC), prefix="")
    return alert


def alert_from_json(document: object) -> alert_pb2.Alert:
    if not isinstance(document, dict):
        raise InvalidField("alert", "expected a JSON object")
    context = document.get("context") or {}
    if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
        raise InvalidField("context", "expected an object of strings")
    return build_alert(
        severity=str(document.get("severity", "")),
        source=str(document.get("source", "")),
        name=str(document.get("name", "")),
        event_ts=document.get("event_ts"),
        alert_id=document.get("alert_id"),
        context=context,
    )


def alert_new(alert: alert_pb2.Alert) -> events_pb2.AlertNew:
    event = events_pb2.AlertNew(schema_version=SCHEMA_VERSION, alert=alert)
    event.produced_at.GetCurrentTime()
    return event
