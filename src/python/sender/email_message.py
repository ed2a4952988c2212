"""The email of one notification (pure)."""

from __future__ import annotations

from datetime import UTC
from email.message import EmailMessage

from alerting.v1 import alert_pb2

SEVERITY_NAMES = {value: name.removeprefix("SEVERITY_") for name, value in alert_pb2.Severity.items()}


def message_id(notification_id: str) -> str:
    """Stable per notification, so a receiver can drop a copy sent again after a crash."""
    return f"<{notification_id}@alerting.local>"


def build_email(
    notification_id: str, sender: str, recipients: list[str], alert: alert_pb2.Alert, rule_ids: list[str]
) -> EmailMessage:
    severity = SEVERITY_NAMES.get(alert.severity, str(alert.severity))
    message = EmailMessage()
    message["Subject"] = f"[{severity}] {alert.source}: {alert.name}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = message_id(notification_id)
    message["X-Alert-Id"] = alert.alert_id
    event_time = alert.event_ts.ToDatetime(tzinfo=UTC).isoformat() if alert.HasField("event_ts") else "unknown"
    lines = [
        f"Severity:  {severity}",
        f"Source:    {alert.source}",
        f"Name:      {alert.name}",
        f"Time:      {event_time}",
        f"Alert id:  {alert.alert_id}",
    ]
    if alert.context:
        lines.append("Context:")
        lines += [f"  {key} = {value}" for key, value in sorted(alert.context.items())]
    lines.append("Matched rules: " + ", ".join(rule_ids))
    message.set_content("\n".join(lines) + "\n")
    return message
