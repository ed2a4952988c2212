"""The bounds every boundary checks, so that what one component accepted the next can
always process: ids, text fields, email addresses and alerts (pure).

The rule-service checks requests with these, the alert-producer the alerts it publishes,
and every consumer the events it reads; an error names the offending field.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email

from alerting.common.vocabulary import SEVERITY_NAMES
from alerting.v1 import alert_pb2

MAX_ALERT_ID_BYTES = 1024  # well inside what one btree entry of the unique index can hold
MAX_FIELD = 256  # an alert's or a rule's source and name
MAX_CONTEXT_ENTRIES = 32
MAX_CONTEXT_KEY = 128
MAX_CONTEXT_VALUE = 2048
MAX_EMAILS = 20
MAX_EMAIL = 254  # RFC 5321's limit on a path
# An event's serialized size: far above what the bounds above allow, far below what a
# producer may send (1 MiB), so that an event derived from it can always be published.
MAX_EVENT_BYTES = 256 * 1024
# An alert's event time: not before this, and not further ahead of the clock than that.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)
# Characters a name, a pattern or an address may not hold, by Unicode category: controls
# (C0, DEL, C1; Postgres text cannot hold NUL), invisible format characters that reorder or
# hide text where people read it (U+202E, U+200B, U+FEFF...), and line breaks.
REFUSED_CATEGORIES = {"Cc": "control character", "Cf": "format character", "Zl": "line separator",
                      "Zp": "paragraph separator"}
ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # the refused characters of ASCII, for its fast path


class InvalidField(ValueError):
    """A value that can never be accepted; the message starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def canonical_uuid(value: str, field: str) -> str:
    """The id in its canonical form (lower case, hyphenated); InvalidField if it is none."""
    if not value:
        raise InvalidField(field, "missing")
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise InvalidField(field, f"not a UUID: {value!r}") from error


def require_canonical_uuid(value: str, field: str) -> str:
    """An id as the platform writes it: a UUID in canonical form, nothing else."""
    if canonical_uuid(value, field) != value:
        raise InvalidField(field, f"not a canonical UUID: {value!r}")
    return value


def require_no_control(value: str, field: str) -> None:
    """InvalidField naming `field` if `value` holds a control, format or line-break character."""
    if value.isascii():  # the common case, at a regex's speed: every alert passes here
        match = ASCII_CONTROL.search(value)
        refused = None if match is None else match[0]
    else:
        refused = next((char for char in value if unicodedata.category(char) in REFUSED_CATEGORIES), None)
    if refused is not None:
        kind = REFUSED_CATEGORIES[unicodedata.category(refused)]
        raise InvalidField(field, f"contains the {kind} U+{ord(refused):04X}")


def text(value: str, field: str, max_chars: int, missing: str = "missing") -> str:
    """A required single-line value of at most `max_chars` characters."""
    if not value:
        raise InvalidField(field, missing)
    if len(value) > max_chars:
        raise InvalidField(field, f"at most {max_chars} characters")
    require_no_control(value, field)
    return value


@functools.lru_cache(maxsize=65536)
def normalized_address(value: str) -> str:
    """email_validator's normalized form, remembered: the same addresses come in every batch
    (the aggregator checks each match's), and validating one anew cost it a seventh of its CPU.
    An invalid one raises each time."""
    return validate_email(value, check_deliverability=False).normalized


def email_address(value: str, field: str) -> str:
    """The address in its normalized form (a lower-case domain, Unicode kept): what the
    platform stores and what the sender sends to."""
    require_no_control(value, field)
    if len(value) > MAX_EMAIL:
        raise InvalidField(field, f"at most {MAX_EMAIL} characters")
    try:
        return normalized_address(value)
    except EmailNotValidError as error:
        raise InvalidField(field, f"malformed email address {value!r}: {error}") from error


def email_addresses(values: Sequence[str], field: str = "emails") -> list[str]:
    """One to MAX_EMAILS valid addresses, normalized, duplicates dropped, in order."""
    if not values:
        raise InvalidField(field, "at least one email address is required")
    if len(values) > MAX_EMAILS:
        raise InvalidField(field, f"at most {MAX_EMAILS} addresses")
    return list(dict.fromkeys(email_address(value, f"{field}[{n}]") for n, value in enumerate(values)))


def timestamp_text(seconds: int) -> str:
    """A time as ISO 8601 when a datetime can hold it, else as seconds since the epoch."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{seconds} seconds since the epoch"


def check_alert(alert: alert_pb2.Alert, now: datetime, prefix: str = "alert") -> None:
    """Everything later steps rely on: an id the dedupe index can hold, a known severity,
    bounded source, name and context, and an event time that is neither unset nor absurd.
    Fields are named `<prefix>.<field>`, or bare with no prefix."""
    field = f"{prefix}." if prefix else ""
    if not alert.alert_id:
        raise InvalidField(f"{field}alert_id", "missing")
    if len(alert.alert_id.encode()) > MAX_ALERT_ID_BYTES:
        raise InvalidField(f"{field}alert_id", f"longer than {MAX_ALERT_ID_BYTES} bytes")
    require_no_control(alert.alert_id, f"{field}alert_id")
    if alert.severity not in SEVERITY_NAMES:
        raise InvalidField(f"{field}severity", f"unknown value {alert.severity}")
    text(alert.source, f"{field}source", MAX_FIELD)
    text(alert.name, f"{field}name", MAX_FIELD)
    if not alert.HasField("event_ts"):
        raise InvalidField(f"{field}event_ts", "missing")
    # Checked as integers: a datetime cannot hold every Timestamp (years past 9999 raise).
    seconds, nanos = alert.event_ts.seconds, alert.event_ts.nanos
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidField(f"{field}event_ts", f"nanos {nanos} is not in [0, 999999999]")
    if not EARLIEST_EVENT.timestamp() <= seconds <= (now + MAX_CLOCK_AHEAD).timestamp():
        raise InvalidField(f"{field}event_ts", f"{timestamp_text(seconds)} is out of range")
    if len(alert.context) > MAX_CONTEXT_ENTRIES:
        raise InvalidField(f"{field}context", f"at most {MAX_CONTEXT_ENTRIES} entries")
    for key, value in alert.context.items():
        text(key, f"{field}context", MAX_CONTEXT_KEY, missing="an empty key")
        if len(value) > MAX_CONTEXT_VALUE:
            raise InvalidField(f"{field}context[{key}]", f"at most {MAX_CONTEXT_VALUE} characters")
        if "\x00" in value:
            raise InvalidField(f"{field}context[{key}]", "contains U+0000 (NUL)")
