"""The evaluator's warm start: its rule index from the Redis snapshot, once its signatures
hold (alerting.rules.snapshot), never from a scan of the rules table; from Postgres only
when the snapshot is missing, corrupt or not signed with the snapshot key, or when
`rule.changed` no longer holds its offset. The evaluator only reads Redis (its ACL user is
read-only on the snapshot): it never writes a rebuild back, the rule-updater does."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

import redis.asyncio as redis

from alerting.common.redis_client import redis_client
from alerting.common.settings import RuleRebuildSettings
from alerting.evaluator.alerts import indexed_grant, rule_fields
from alerting.evaluator.matcher import RuleIndex
from alerting.rules.rebuild import load_or_rebuild

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmStart:
    index: RuleIndex
    next_offset: int  # the first `rule.changed` offset the index does not cover
    version: int  # the seq of the newest change it holds
    rebuilt: bool  # whether the rules had to be read from Postgres


async def load_index(
    client: redis.Redis, settings: RuleRebuildSettings, stop: asyncio.Event | None = None,
) -> WarmStart:
    """The index of the snapshot (or of the rules table, if need be).

    The cyclic garbage collector is paused meanwhile (a million new objects would trigger it
    over and over), and the index is then frozen out of its reach: it lives as long as the
    process, and later full collections need not walk it."""
    gc.disable()
    try:
        loaded, rebuilt = await load_or_rebuild(client, settings, rule_fields, stop=stop, write_back=False)
        index = RuleIndex()
        index.load(loaded.rules)
        index.load_grants(indexed_grant(grant) for grant in loaded.grants)
    finally:
        gc.enable()
    gc.freeze()
    return WarmStart(index, loaded.next_offset, loaded.version, rebuilt)


async def warm_index(settings: RuleRebuildSettings, stop: asyncio.Event) -> WarmStart:
    """The index from the snapshot (or a rebuild)."""
    client = redis_client(settings)
    try:
        warm = await load_index(client, settings, stop)
    finally:
        await client.aclose()
    log.info("warmed %d rules from the %s, up to rule.changed offset %d",
             len(warm.index), "rules table" if warm.rebuilt else "snapshot", warm.next_offset)
    return warm
