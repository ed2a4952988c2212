"""Validation of rule-service requests (pure). Each error names the offending field."""

from __future__ import annotations

import base64
import re
import uuid

from alerting.common.vocabulary import SEVERITIES, WILDCARD

MAX_PATTERN = 256
MAX_CLIENT_NAME = 200
MAX_EMAILS = 20
MAX_EMAIL = 254
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Deliberately simple: one @, no spaces or commas, a dot in the domain.
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
# C0, DEL and C1 controls mean nothing in a name, a pattern or an address; Postgres text cannot hold NUL.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidField(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def require_uuid(value: str, field: str) -> str:
    if not value:
        raise InvalidField(field, "missing")
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise InvalidField(field, f"not a UUID: {value!r}") from error


def _require_no_control(value: str, field: str) -> None:
    control = CONTROL.search(value)
    if control:
        raise InvalidField(field, f"contains the control character U+{ord(control[0]):04X}")


def client_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidField("name", "missing")
    if len(name) > MAX_CLIENT_NAME:
        raise InvalidField("name", f"at most {MAX_CLIENT_NAME} characters")
    _require_no_control(name, "name")
    return name


def rule_fields(severity: str, source: str, name: str, emails: list[str]) -> tuple[str, str, str, list[str]]:
    """The rule's patterns and endpoints, checked; emails de-duplicated, in order."""
    if severity not in (*SEVERITIES, WILDCARD):
        raise InvalidField("severity", f"unknown severity {severity!r} (expected LOW, MEDIUM, HIGH, CRITICAL or *)")
    for field, value in (("source", source), ("name", name)):
        if not value:
            raise InvalidField(field, "missing (use * to match any value)")
        if len(value) > MAX_PATTERN:
            raise InvalidField(field, f"at most {MAX_PATTERN} characters")
        _require_no_control(value, field)
    if severity == source == name == WILDCARD:
        raise InvalidField("rule", "at least one of severity, source and name must not be *")
    if not emails:
        raise InvalidField("emails", "at least one email address is required")
    if len(emails) > MAX_EMAILS:
        raise InvalidField("emails", f"at most {MAX_EMAILS} addresses")
    for position, email in enumerate(emails):
        _require_no_control(email, f"emails[{position}]")
        if len(email) > MAX_EMAIL or not EMAIL.match(email):
            raise InvalidField(f"emails[{position}]", f"malformed email address {email!r}")
    return severity, source, name, list(dict.fromkeys(emails))


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


def decode_page_token(token: str) -> str | None:
    """The id a page starts after; None for the first page."""
    if not token:
        return None
    try:
        return str(uuid.UUID(base64.urlsafe_b64decode(token.encode()).decode()))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidField("page_token", "not a token this service issued") from error
