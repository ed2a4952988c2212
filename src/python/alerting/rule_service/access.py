"""API keys and what each caller may do; pure.

A key is `ak_<key_id>.<secret>`: the key id is public (it names the key in lists, in
revocations and in `updated_by`), the secret is 256 random bits of which only the SHA-256
is stored. A secret that long needs no slow hash: guessing one is out of reach, and a
stolen table of hashes gives nothing to replay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from alerting.common.validation import InvalidField, require_no_control, timestamp_text
from alerting.rule_service.validation import instant

ADMIN = "ADMIN"
TENANT = "TENANT"
BOOTSTRAP = "bootstrap"  # created_by of the admin key given at first start
MAX_KEY_NAME = 200
_KEY = re.compile(r"ak_([a-z2-7]{12})\.([A-Za-z0-9_-]{43})")
_KEY_ID = re.compile(r"[a-z2-7]{12}")
_KEY_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


class MalformedKey(Exception):
    """The credential is not an API key of this platform."""


class PermissionDenied(Exception):
    """PERMISSION_DENIED: the caller's role may not do this."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret_hash: bytes
    key: str  # shown once to whoever created it


def new_key() -> NewKey:
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(12))  # 60 bits: unique enough
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, secret_hash(secret), f"ak_{key_id}.{secret}")


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(key: str) -> tuple[str, str]:
    """(key_id, secret) of a well-formed key."""
    match = _KEY.fullmatch(key)
    if match is None:
        raise MalformedKey("not an API key (ak_<key id>.<secret>)")
    return match.group(1), match.group(2)


def bearer_key(authorization: str | None) -> str:
    """The key in an `authorization: Bearer <key>` metadata value."""
    if authorization is None:
        raise MalformedKey("no API key: send the metadata `authorization: Bearer <key>`")
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise MalformedKey("the authorization metadata is not `Bearer <key>`")
    return key.strip()


def presented_key(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The key a call presents in its metadata: exactly one `authorization` value (with two,
    which one a server reads is a guess: refused), `Bearer <key>`."""
    values = [value for name, value in metadata if name == "authorization"]
    if len(values) > 1:
        raise MalformedKey(f"{len(values)} authorization metadata values; send exactly one,"
                           " `authorization: Bearer <key>`")
    return bearer_key(values[0] if values and isinstance(values[0], str) else None)


def secret_matches(stored_hash: bytes, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, secret_hash(secret))


def key_id(value: str, field: str = "key_id") -> str:
    value = value.strip()
    if not _KEY_ID.fullmatch(value):
        raise InvalidField(field, "a key id is 12 characters of a-z and 2-7")
    return value


def key_name(value: str) -> str:
    """What a key is for: optional, at most MAX_KEY_NAME characters, one plain line."""
    value = value.strip()
    if len(value) > MAX_KEY_NAME:
        raise InvalidField("name", f"at most {MAX_KEY_NAME} characters")
    require_no_control(value, "name")
    return value


def expiry(seconds: int, nanos: int, now: datetime, limit: datetime | None) -> datetime:
    """When a new key stops working, from a Timestamp's fields (checked as integers first: a
    Timestamp may hold what a datetime cannot): after `now`, and not after `limit` (the
    creating key's own expiry, when a TENANT key creates a key)."""
    expires_at = instant(seconds, nanos, "expires_at")
    if expires_at <= now:
        raise InvalidField("expires_at", f"{timestamp_text(seconds)} is not in the future")
    if limit is not None and expires_at > limit:
        raise InvalidField("expires_at", f"a key made by a TENANT key expires no later than that key"
                                         f" ({limit.isoformat()})")
    return expires_at


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id and role, and for a tenant the one client it may touch."""

    key_id: str
    role: str
    client_id: str | None  # set exactly for TENANT
    expires_at: datetime | None = None  # None: never

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def visible_client(self) -> str | None:
        """The only client whose data the caller may see; None: every client (an admin)."""
        return None if self.is_admin else self.client_id

    def may_see(self, client_id: str) -> bool:
        return self.is_admin or client_id == self.client_id

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise PermissionDenied(f"{what} needs an ADMIN key; this is a TENANT key ({self.key_id})")
