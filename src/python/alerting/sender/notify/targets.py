"""The receivers a delivery goes to, read as the sender attempts it (a rotated secret, a
changed URL or new addresses apply to the next attempt), each one's signing secret unsealed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from alerting.rules.receivers import Sealer

SELECT_RECEIVERS = """
SELECT receiver_id::text, client_id::text, kind, url, addresses, secret_sealed
FROM receivers WHERE receiver_id = ANY($1::uuid[])
"""


@dataclass(frozen=True)
class Target:
    receiver_id: str
    client_id: str
    kind: str  # "email", "webhook" or "slack"
    url: str  # a webhook's or Slack's; empty for email
    secret: str | None  # a webhook's signing secret; None for the others
    addresses: tuple[str, ...] = ()  # an email receiver's


@dataclass(frozen=True)
class Unusable:
    """A receiver that exists but cannot be called now, and why (its secret cannot be unsealed)."""

    reason: str


async def targets(pool: asyncpg.Pool, receiver_ids: Iterable[str], sealer: Sealer | None
                  ) -> dict[str, Target | Unusable]:
    """The receivers that still exist, by id; a deleted one is missing."""
    wanted = sorted(set(receiver_ids))
    if not wanted:
        return {}
    found: dict[str, Target | Unusable] = {}
    for row in await pool.fetch(SELECT_RECEIVERS, wanted):
        secret = None
        if row["secret_sealed"] is not None:
            if sealer is None:
                found[row["receiver_id"]] = Unusable("this sender has no receiver-secret key to sign with")
                continue
            try:
                secret = sealer.unseal(bytes(row["secret_sealed"]))
            except ValueError as error:
                found[row["receiver_id"]] = Unusable(str(error))
                continue
        found[row["receiver_id"]] = Target(row["receiver_id"], row["client_id"], row["kind"], row["url"] or "", secret,
                                           tuple(row["addresses"]))
    return found
