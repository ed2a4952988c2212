"""The receivers a delivery goes to, read as the sender attempts it (a rotated secret, a
changed URL or new addresses apply to the next attempt), each one's signing secret unsealed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from alerting.rules.receivers import Sealer

SELECT_RECEIVERS = """
SELECT receiver_id::text, client_id::text, kind, url, addresses, url_sealed, secret_sealed
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
    """A receiver that exists but cannot be called now, and why (its secret or URL cannot be
    unsealed)."""

    reason: str


async def targets(pool: asyncpg.Pool, receiver_ids: Iterable[str], sealer: Sealer | None
                  ) -> dict[str, Target | Unusable]:
    """The receivers that still exist, by id; a deleted one is missing."""
    wanted = sorted(set(receiver_ids))
    if not wanted:
        return {}
    found: dict[str, Target | Unusable] = {}
    for row in await pool.fetch(SELECT_RECEIVERS, wanted):
        try:
            secret, sealed_url = (None if row[column] is None else unsealed(sealer, bytes(row[column]))
                                  for column in ("secret_sealed", "url_sealed"))
        except ValueError as error:
            found[row["receiver_id"]] = Unusable(str(error))
            continue
        found[row["receiver_id"]] = Target(row["receiver_id"], row["client_id"], row["kind"],
                                           sealed_url or row["url"] or "", secret, tuple(row["addresses"]))
    return found


def unsealed(sealer: Sealer | None, sealed: bytes) -> str:
    if sealer is None:
        raise ValueError("this sender has no receiver-secret key to unseal with")
    return sealer.unseal(sealed)
