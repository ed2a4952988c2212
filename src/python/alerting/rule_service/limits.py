"""Where the per-peer limit on failed authentications applies, and the per-tenant cap on
recipients (pure)."""

from __future__ import annotations

import ipaddress

from alerting.common.validation import InvalidField
from alerting.rule_service.errors import QuotaExceeded


def peer_address(peer: str) -> str:
    """What grpc's peer (`ipv4:10.0.0.1:5000`, `ipv6:[::1]:5000`, `unix:/path`) is limited as:
    the IP address without the port (a new connection is the same peer), an IPv6 address as
    its /64 (one host commonly holds a whole /64), an IPv4-mapped IPv6 address as the IPv4
    one; anything else as given."""
    kind, _, rest = peer.split(",")[0].partition(":")  # of a list of addresses, the first
    host = rest.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if kind not in ("ipv4", "ipv6"):
        return peer
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def check_recipients(client_id: str, requested: int, before: int, after: int, limit: int) -> None:
    """A rule change that leaves the client with `after` distinct recipients across its rules
    (`before` now; `requested` in the rule itself) against the client's limit. Only a change
    that takes the client past the limit is refused: INVALID_ARGUMENT when the rule alone
    holds more than the limit, RESOURCE_EXHAUSTED otherwise. A client already past it (the
    limit was lowered) keeps its recipients and may change them, but not grow their number."""
    if after <= limit or after <= before:
        return
    if requested > limit:
        raise InvalidField("emails", f"{requested} addresses, more than the {limit} distinct recipients a client"
                                     " may have")
    raise QuotaExceeded(f"emails: client {client_id} would have {after} distinct recipients across its rules,"
                        f" more than the {limit} a client may have; reuse its addresses or remove some first")
