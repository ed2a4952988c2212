"""Receivers (pure): a tenant's named endpoint (email addresses, a webhook, a Slack channel),
which rules name beside their own email addresses. How a receiver rides along with a
notification (an endpoint `receiver:<id>` among its recipients), which URLs may be saved and
called, and how a webhook's signing secret is sealed at rest and signs a request.

Outbound requests go to addresses a tenant chose, so a URL is checked when it is saved and
again, with the addresses its host resolves to, when the sender calls it: HTTPS only, and no
loopback, private, link-local, shared or metadata address, unless the operator allows a
network (the local stack allows loopback for its own webhook receiver).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from alerting.common.validation import InvalidField, canonical_uuid

ENDPOINT_PREFIX = "receiver:"
MAX_URL = 2048
SIGNATURE_VERSION = "v1"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Beyond what `is_global` already refuses: the cloud metadata address is link-local, and
# 100.64.0.0/10 (shared address space) is not global either; named for the reason given.
METADATA = ipaddress.ip_address("169.254.169.254")


def endpoint(receiver_id: str) -> str:
    """How a notification lists a receiver among its recipients (addresses hold an @, so the
    two never collide)."""
    return ENDPOINT_PREFIX + receiver_id


def receiver_of(recipient: str) -> str | None:
    """The receiver id of a recipient that is a receiver's endpoint, else None (an address)."""
    return recipient[len(ENDPOINT_PREFIX):] if recipient.startswith(ENDPOINT_PREFIX) else None


def receiver_ids(values: Iterable[str], field: str = "receiver_ids") -> list[str]:
    """Receiver ids as a rule stores them: canonical, unique, sorted."""
    checked = {canonical_uuid(value, f"{field}[{index}]") for index, value in enumerate(values)}
    if len(checked) > 20:
        raise InvalidField(field, f"{len(checked)} receivers; a rule names at most 20")
    return sorted(checked)


@dataclass(frozen=True)
class OutboundPolicy:
    """What the operator allows beyond public HTTPS endpoints."""

    allow_http: bool = False
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, allow_http: bool, networks: Sequence[str]) -> OutboundPolicy:
        return cls(allow_http, tuple(ipaddress.ip_network(network, strict=False) for network in networks))


def refused_address(address: IpAddress, policy: OutboundPolicy) -> str | None:
    """Why a request may not go to `address`, or None when it may."""
    if any(address in network for network in policy.allowed_networks):
        return None
    if address == METADATA:
        return f"{address} is the cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refused_address(address.ipv4_mapped, policy)
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_private or not address.is_global:
        return f"{address} is not a public address"
    return None


def url(value: str, policy: OutboundPolicy, field: str = "url") -> str:
    """A receiver's URL as it may be saved: absolute, HTTPS (or HTTP if allowed), a host and
    no credentials in it, and, if the host is an address, one requests may go to. A host
    name is checked again, resolved, at each request."""
    if not value:
        raise InvalidField(field, "missing")
    if len(value) > MAX_URL:
        raise InvalidField(field, f"{len(value)} characters; at most {MAX_URL}")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise InvalidField(field, "must be ASCII without spaces or control characters (percent-encode the rest)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise InvalidField(field, f"not a URL: {error}") from None
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in schemes:
        raise InvalidField(field, f"scheme {parts.scheme or '(none)'!r} is not allowed (use {' or '.join(schemes)})")
    if parts.username is not None or parts.password is not None:
        raise InvalidField(field, "must not hold credentials (a receiver's secret signs its requests)")
    host = parts.hostname
    if not host:
        raise InvalidField(field, "has no host")
    if port == 0:
        raise InvalidField(field, "port 0")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return value  # a name: checked by the addresses it resolves to, at each request
    reason = refused_address(address, policy)
    if reason is not None:
        raise InvalidField(field, f"{reason}; requests may not go there")
    return value


def redacted(value: str) -> str:
    """A URL that is a credential (a Slack incoming webhook's) as the API shows it: its last
    path segment, the secret part, hidden."""
    parts = urlsplit(value)
    head = parts.path.rstrip("/").rpartition("/")[0]
    return f"{parts.scheme}://{parts.netloc}{head}/…"


def new_secret() -> str:
    """A webhook's signing secret: 256 random bits, shown to the tenant once."""
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over "<timestamp>.<body>", hex."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


class Sealer:
    """Seals signing secrets (and Slack URLs) for storage (Fernet: AES-128-CBC with HMAC-SHA256) under a key
    derived from the platform's receiver-secret key, which only the rule-service and the
    sender hold. A database dump alone reveals no secret."""

    def __init__(self, platform_key: str) -> None:
        if len(platform_key) < 32:
            raise ValueError("the receiver-secret key must hold at least 32 characters")
        derived = hashlib.sha256(b"alerting receiver secrets\x00" + platform_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def unseal(self, sealed: bytes) -> str:
        """The secret; ValueError when it was sealed under another key or altered."""
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise ValueError("the sealed secret cannot be unsealed with this key") from None
