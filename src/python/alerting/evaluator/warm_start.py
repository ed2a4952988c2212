"""The evaluator's warm start: its rule index from the Redis snapshot (rebuilt from
Postgres only when it is missing or corrupt, or when `rule.changed` no longer holds its
offset), never from a scan of the rules table."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass

import redis.asyncio as redis

from alerting.common.redis_client import redis_client
from alerting.common.settings import Settings
from alerting.evaluator.alerts import indexed_grant, rule_fields
from alerting.evaluator.matcher import RuleIndex
from alerting.rules.rebuild import load_or_rebuild

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmStart:
    index: RuleIndex
    next_offset: int  # the first `rule.changed` offset the index does not cover
    version: int  # the seq of the newest change it holds
    rebuilt: bool  # whether the snapshot had to be rebuilt from Postgres


async def load_index(client: redis.Redis, settings: Settings, stop: asyncio.Event | None = None) -> WarmStart:
    """The index of the snapshot (rebuilt from Postgres if need be).

    The cyclic garbage collector is paused meanwhile (a million new objects would trigger it
    over and over), and the index is then frozen out of its reach: it lives as long as the
    process, and later full collections need not walk it."""
    gc.disable()
    try:
        loaded, rebuilt = await load_or_rebuild(client, settings, rule_fields, stop=stop)
        index = RuleIndex()
        index.load(loaded.rules)
        index.load_grants(indexed_grant(grant) for grant in loaded.grants)
    finally:
        gc.enable()
    gc.freeze()
    return WarmStart(index, loaded.next_offset, loaded.version, rebuilt)


async def warm_index(settings: Settings, stop: asyncio.Event) -> WarmStart:
    """The index from the snapshot (or a rebuild)."""
    client = redis_client(settings)
    try:
        warm = await load_index(client, settings, stop)
    finally:
        await client.aclose()
    log.info("warmed %d rules from the %s, up to rule.changed offset %d",
             len(warm.index), "rebuilt snapshot" if warm.rebuilt else "snapshot", warm.next_offset)
    return warm
