"""What a webhook or Slack receiver is sent (pure): the JSON document of a notification or a
digest, version 1, and the Slack message made of it.

The webhook document is a published contract (docs/overview.md shows it): fields are only
ever added to version 1; a change that removes or retypes one is version 2.

    {"schema": "alerting.webhook/v1", "kind": "notification" | "digest", "id": "...",
     "client_id": "...", "notifications": [{"notification_id": "...", "rule_ids": [...],
     "alert": {"alert_id", "severity", "source", "name", "event_ts", "context"}}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from alerting.common.vocabulary import severity_name
from alerting.sender.email_message import digest_subject
from alerting.v1 import alert_pb2

SCHEMA = "alerting.webhook/v1"
# A digest's Slack message lists this many alerts; the rest are counted.
SLACK_LISTED = 20
SLACK_COLOURS = {"CRITICAL": "#b00020", "HIGH": "#e65100", "MEDIUM": "#f9a825", "LOW": "#1565c0"}
SLACK_TEXT = 2900  # Slack cuts a section's text at 3,000 characters


@dataclass(frozen=True)
class Delivered:
    """One notification as a receiver is told of it."""

    notification_id: str
    alert: alert_pb2.Alert
    rule_ids: tuple[str, ...]


def alert_fields(alert: alert_pb2.Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "severity": severity_name(alert.severity),
        "source": alert.source,
        "name": alert.name,
        "event_ts": alert.event_ts.ToDatetime(tzinfo=UTC).isoformat() if alert.HasField("event_ts") else None,
        "context": dict(sorted(alert.context.items())),
    }


def webhook_body(kind: str, id_: str, client_id: str, delivered: Sequence[Delivered]) -> bytes:
    """The POST body: compact UTF-8 JSON, the same bytes on every attempt of `id_`."""
    document = {
        "schema": SCHEMA,
        "kind": kind,
        "id": id_,
        "client_id": client_id,
        "notifications": [
            {"notification_id": item.notification_id, "rule_ids": list(item.rule_ids),
             "alert": alert_fields(item.alert)}
            for item in delivered
        ],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _mrkdwn(value: str) -> str:
    """Text Slack shows as it is: its three control characters escaped."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(kind: str, delivered: Sequence[Delivered], link: str) -> bytes:
    """A Slack incoming-webhook message: an attachment coloured by the highest severity,
    holding blocks that list the alerts, and where to look the notification up."""
    alerts = [item.alert for item in delivered]
    top = severity_name(max(alert.severity for alert in alerts))
    title = digest_subject(alerts) if kind == "digest" else f"[{top}] {alerts[0].source}/{alerts[0].name}"
    lines = []
    for item in delivered[:SLACK_LISTED]:
        alert = item.alert
        when = alert.event_ts.ToDatetime(tzinfo=UTC).isoformat() if alert.HasField("event_ts") else "unknown time"
        lines.append(f"• *{severity_name(alert.severity)}* `{_mrkdwn(alert.source)}/{_mrkdwn(alert.name)}`"
                     f" at {when} (alert {_mrkdwn(alert.alert_id)})")
    if len(delivered) > SLACK_LISTED:
        lines.append(f"…and {len(delivered) - SLACK_LISTED} more")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:SLACK_TEXT]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(link)[:SLACK_TEXT]}]},
    ]
    message = {"text": title, "attachments": [{"color": SLACK_COLOURS.get(top, "#9e9e9e"), "blocks": blocks}]}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
