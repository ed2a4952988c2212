"""The email of one notification, or of a digest of several, as the bytes that go over
SMTP (pure).

Rendered from a fixed template rather than through `email.message.EmailMessage`, whose
header registry cost the sender ~0.4 ms of CPU per email (most of its work). The
standard library still does the encoding: RFC 2047 for header values that need it,
quoted-printable for a body that is not plain ASCII in short lines, RFC 5322 dates.
"""

from __future__ import annotations

import quopri
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC
from email.header import Header
from email.utils import formatdate

from email_validator import EmailNotValidError, validate_email

from alerting.common.vocabulary import severity_name
from alerting.v1 import alert_pb2

# Alert fields come from upstream systems: no control character may reach a header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_HEADER_VALUE = 400


def smtp_address(address: str, smtputf8: bool) -> str | None:
    """The address to give the server: as stored when it is ASCII or the server takes UTF-8
    (SMTPUTF8); otherwise its ASCII form (an IDNA domain) if it has one; else None."""
    if address.isascii() or smtputf8:
        return address
    try:
        return validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return None


def message_id(id_: str) -> str:
    """Stable per notification (or digest), so a receiver can drop a copy sent again after a crash."""
    return f"<{id_}@alerting.local>"


def header_value(value: str) -> str:
    """A safe header value: control characters folded to spaces, long values cut, non-ASCII
    encoded (RFC 2047) and long lines folded."""
    value = _CONTROL.sub(" ", value)[:_MAX_HEADER_VALUE]
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8").encode()


def body_text(severity: str, alert: alert_pb2.Alert, rule_ids: list[str]) -> str:
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
    return "\n".join(lines) + "\n"


def render_email(
    notification_id: str, sender: str, recipients: list[str], alert: alert_pb2.Alert, rule_ids: list[str]
) -> bytes:
    severity = severity_name(alert.severity)
    return _email(sender, recipients, f"[{severity}] {alert.source}: {alert.name}", notification_id,
                  body_text(severity, alert, rule_ids), [("X-Alert-Id", header_value(alert.alert_id))])


# A digest's email lists this many notifications; the rest are named by a command.
DIGEST_LISTED = 500


def digest_subject(alerts: Sequence[alert_pb2.Alert]) -> str:
    """`[HIGH] 37 alerts: db/disk_full and 4 others`: the highest severity, how many, the most
    frequent source/name and how many other source/names."""
    kinds = Counter(f"{alert.source}/{alert.name}" for alert in alerts)
    [(first, _)] = kinds.most_common(1)  # among equals, the first in the digest
    severity = severity_name(max(alert.severity for alert in alerts))
    others = len(kinds) - 1
    count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    return f"[{severity}] {count}: {first}" + (f" and {others} other{'s' if others != 1 else ''}" if others else "")


def digest_text(digest_id: str, members: Sequence[tuple[alert_pb2.Alert, Sequence[str]]]) -> str:
    lines = [f"{len(members)} alert{'s' if len(members) != 1 else ''}, in the order they were recorded:", ""]
    for alert, rule_ids in members[:DIGEST_LISTED]:
        event_time = alert.event_ts.ToDatetime(tzinfo=UTC).isoformat() if alert.HasField("event_ts") else "unknown"
        lines.append(f"[{severity_name(alert.severity)}] {alert.source}/{alert.name}  {event_time}"
                     f"  alert {alert.alert_id}  rules {', '.join(rule_ids)}")
    if len(members) > DIGEST_LISTED:
        lines += ["", f"... and {len(members) - DIGEST_LISTED} more: alertctl notification list --digest {digest_id}"]
    return "\n".join(lines) + "\n"


def render_digest(
    digest_id: str, sender: str, recipients: list[str], members: Sequence[tuple[alert_pb2.Alert, Sequence[str]]]
) -> bytes:
    """One email for the notifications of a digest (at least one), its Message-ID the digest's."""
    alerts = [alert for alert, _ in members]
    return _email(sender, recipients, digest_subject(alerts), digest_id, digest_text(digest_id, members),
                  [("X-Digest-Id", digest_id)])


def _email(sender: str, recipients: list[str], subject: str, id_: str, text: str,
           extra: list[tuple[str, str]]) -> bytes:
    headers = [
        ("From", header_value(sender)),
        ("To", header_value(", ".join(recipients))),
        ("Subject", header_value(subject)),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id(id_)),
        *extra,
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
    ]
    if text.isascii() and max(map(len, text.splitlines())) < 990:
        headers.append(("Content-Transfer-Encoding", "7bit"))  # as is: readable in the raw file
        body = text.encode("ascii")
    else:
        headers.append(("Content-Transfer-Encoding", "quoted-printable"))
        body = quopri.encodestring(text.encode("utf-8"))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    return head + b"\r\n" + body.replace(b"\n", b"\r\n")
