"""Validation of rule-service requests beyond rules themselves (alerting.rules.validation)
and the shared bounds (alerting.common.validation); pure. Each error names the field."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alerting.common.validation import InvalidField, require_no_control, timestamp_text

MAX_CLIENT_NAME = 200
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)  # far enough; Postgres and datetime hold it


def client_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidField("name", "missing")
    if len(name) > MAX_CLIENT_NAME:
        raise InvalidField("name", f"at most {MAX_CLIENT_NAME} characters")
    require_no_control(name, "name")
    return name


def expected_version(value: int, required: bool) -> int:
    if value < 0 or (required and value == 0):
        raise InvalidField("expected_version", "the version the change is based on is required")
    return value


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidField("page_size", f"between 0 and {MAX_PAGE_SIZE}")
    return value or DEFAULT_PAGE_SIZE


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def _uuid(value: str) -> str:
    return str(uuid.UUID(value))


def decode_page_token(token: str, parse_id: Callable[[str], str] = _uuid) -> str | None:
    """The id a page starts after (a UUID unless `parse_id` checks another kind of id, raising
    ValueError); None for the first page."""
    if not token:
        return None
    try:
        return parse_id(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidField("page_token", "not a token this service issued") from error


def encode_grant_position(client_id: str, source: str, prefix: bool) -> str:
    """A page token for grants, ordered by (client_id, source, prefix): the last grant's key."""
    return encode_page_token(f"{client_id}|{int(prefix)}|{source}")


def decode_grant_position(token: str) -> tuple[str, str, bool] | None:
    """The (client_id, source, prefix) a page of grants starts after; None for the first page."""
    position = decode_page_token(token, _grant_position)
    if position is None:
        return None
    client_id, prefix, source = position.split("|", 2)
    return client_id, source, prefix == "1"


def _grant_position(value: str) -> str:
    client_id, prefix, source = value.split("|", 2)  # fewer parts: ValueError
    if prefix not in ("0", "1"):
        raise ValueError(f"prefix flag {prefix!r}")
    return f"{_uuid(client_id)}|{prefix}|{source}"


def encode_cursor(created_at: datetime, last_id: str) -> str:
    """A page token for lists ordered newest first: the last item's time and id."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{last_id}".encode()).decode()


def decode_cursor(token: str) -> tuple[datetime, str] | None:
    """The (time, id) a newest-first page starts after; None for the first page."""
    if not token:
        return None
    try:
        created_at, _, last_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(created_at), str(uuid.UUID(last_id))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidField("page_token", "not a token this service issued") from error


def instant(seconds: int, nanos: int, field: str) -> datetime:
    """The time a Timestamp's fields say, checked as integers first (a Timestamp may hold what a
    datetime cannot): nanos in range, not after LATEST_TIME. A time before 1970 is taken as
    1970's start, which every caller refuses or replaces as past."""
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidField(field, f"nanos {nanos} is not in [0, 999999999]")
    if seconds > LATEST_TIME.timestamp():
        raise InvalidField(field, f"{timestamp_text(seconds)} is after {LATEST_TIME.date()}")
    return datetime.fromtimestamp(max(seconds, 0), UTC) + timedelta(microseconds=nanos // 1000)


def span(seconds: int, nanos: int, field: str) -> timedelta:
    """The length a Duration's fields say, checked as integers first: nanos in range and of the
    seconds' sign, and no longer than the times the platform holds."""
    if not -1_000_000_000 < nanos < 1_000_000_000 or seconds * nanos < 0:
        raise InvalidField(field, f"nanos {nanos} does not go with seconds {seconds}")
    if abs(seconds) > LATEST_TIME.timestamp():
        raise InvalidField(field, f"{seconds} s is out of range")
    return timedelta(seconds=seconds, microseconds=nanos // 1000)
