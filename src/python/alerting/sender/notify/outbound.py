"""Outbound HTTP requests to a tenant's receivers: one POST, its answer read into an outcome.

The URL's host is resolved and every address it resolves to is checked (rules/receivers.py)
before the request, and the request goes to the checked address (with the host name for
TLS and `Host`), so that a name cannot resolve to one address for the check and another for
the connection. Redirects are followed only when they keep the POST (307, 308), a few times,
each target checked the same way. At most a few requests go to one host at once, and a
request waits only a little for its turn: a slow or dead endpoint defers its own
deliveries, never another tenant's. Answers are read up to a bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from alerting.rules import receivers
from alerting.rules.receivers import OutboundPolicy
from alerting.sender.outcomes import RecipientOutcome, RecipientStatus

RETRIED_STATUSES = frozenset({408, 429})
KEPT_POST_REDIRECTS = frozenset({307, 308})
RESPONSE_SHOWN = 300  # characters of an answer's body kept with a FAILED outcome


@dataclass(frozen=True)
class OutboundLimits:
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    per_host: int = 4
    host_wait_seconds: float = 5.0
    max_response_bytes: int = 64 * 1024
    max_redirects: int = 3


class Refused(Exception):
    """A request that may not be made: the URL or an address it resolves to is not allowed."""


def retry_at(value: str | None, now: datetime) -> datetime | None:
    """When a `Retry-After` answer asks to be tried again: seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=min(int(value), 7 * 24 * 3600))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def shown(body: bytes) -> str:
    text = body[:RESPONSE_SHOWN * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:RESPONSE_SHOWN]


class Outbound:
    """One HTTP client for every receiver: pooled keep-alive connections, bounded per host."""

    def __init__(self, policy: OutboundPolicy, limits: OutboundLimits, ca_file: str | None = None) -> None:
        self.policy = policy
        self.limits = limits
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(limits.timeout_seconds, connect=limits.connect_timeout_seconds),
            follow_redirects=False, trust_env=False, verify=verify,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        # A span per request, and `traceparent` sent: the trace goes on into the receiver.
        HTTPXClientInstrumentor.instrument_client(self.client)
        self.hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(limits.per_host))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def resolve(self, url: str) -> tuple[str, str, Mapping[str, str]]:
        """The URL to connect to (the host replaced by a checked address), the host's name,
        and the request extensions (the name for TLS)."""
        receivers.url(url, self.policy)
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise ConnectionError(f"cannot resolve {host}: {error.strerror}") from None
        addresses = sorted({ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos}, key=str)
        for address in addresses:
            reason = receivers.refused_address(address, self.policy)
            if reason is not None:
                raise Refused(f"{host} resolves to {reason}; requests may not go there")
        chosen = addresses[0]
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return urlunsplit(parts._replace(netloc=netloc)), parts.netloc, extensions

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], recipient: str) -> RecipientOutcome:
        """POST `body` to `url`: SENT on a 2xx; DEFERRED (tried again) on 408, 429, a 5xx, a
        timeout or a connection error, not before a `Retry-After`; FAILED otherwise."""
        host = urlsplit(url).netloc
        turn = self.hosts[host]
        try:
            async with asyncio.timeout(self.limits.host_wait_seconds):
                await turn.acquire()
        except TimeoutError:
            return RecipientOutcome(recipient, RecipientStatus.DEFERRED,
                                    f"{self.limits.per_host} requests to {host} already in flight")
        try:
            async with asyncio.timeout(self.limits.timeout_seconds * (self.limits.max_redirects + 1)):
                return await self._post(url, body, headers, recipient)
        except Refused as refused:
            return RecipientOutcome(recipient, RecipientStatus.FAILED, str(refused))
        except (TimeoutError, httpx.TimeoutException):
            return RecipientOutcome(recipient, RecipientStatus.DEFERRED, f"no answer from {host} in time")
        except (ConnectionError, OSError, httpx.TransportError) as error:
            return RecipientOutcome(recipient, RecipientStatus.DEFERRED, f"{type(error).__name__}: {error}"[:500])
        finally:
            turn.release()

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str], recipient: str) -> RecipientOutcome:
        for _ in range(self.limits.max_redirects + 1):
            try:
                target, host, extensions = await self.resolve(url)
            except ValueError as invalid:  # the URL itself, or a redirect's, is not allowed
                raise Refused(str(invalid)) from None
            request = self.client.build_request("POST", target, content=body, headers={**headers, "Host": host},
                                                extensions=dict(extensions))
            response = await self.client.send(request, stream=True)
            try:
                answer = bytearray()
                async for chunk in response.aiter_raw():
                    answer += chunk[:self.limits.max_response_bytes - len(answer)]
                    if len(answer) >= self.limits.max_response_bytes:
                        break
            finally:
                await response.aclose()
            status = response.status_code
            location = response.headers.get("location")
            if status in KEPT_POST_REDIRECTS and location:
                url = urljoin(url, location)
                continue
            said = f"HTTP {status}" + (f": {shown(bytes(answer))}" if answer else "")
            if 200 <= status < 300:
                return RecipientOutcome(recipient, RecipientStatus.SENT, f"HTTP {status}")
            if status in RETRIED_STATUSES or status >= 500:
                return RecipientOutcome(recipient, RecipientStatus.DEFERRED, said,
                                        retry_at(response.headers.get("retry-after"), datetime.now(UTC)))
            if 300 <= status < 400:
                said = f"HTTP {status}: a redirect that does not keep the POST (only 307 and 308 are followed)"
            return RecipientOutcome(recipient, RecipientStatus.FAILED, said)
        return RecipientOutcome(recipient, RecipientStatus.FAILED, f"more than {self.limits.max_redirects} redirects")
