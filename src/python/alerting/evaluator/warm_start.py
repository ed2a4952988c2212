"""The evaluator's warm start: its rule index from the Redis snapshot (rebuilt from
Postgres only when it is missing or corrupt, or when `rule.changed` no longer holds its
offset), never from a scan of the rules table."""

from __future__ import annotations

import asyncio
import gc
import logging

import redis.asyncio as redis

from alerting.common.settings import Settings
from alerting.evaluator.alerts import rule_fields
from alerting.evaluator.matcher import RuleIndex
from alerting.rules.rebuild import load_or_rebuild

log = logging.getLogger(__name__)


async def load_index(
    client: redis.Redis, settings: Settings, stop: asyncio.Event | None = None
) -> tuple[RuleIndex, int, bool]:
    """The index of the snapshot (rebuilt from Postgres if need be), the first `rule.changed`
    offset it does not cover, and whether the snapshot was rebuilt.

    The cyclic garbage collector is paused meanwhile (a million new objects would trigger it
    over and over), and the index is then frozen out of its reach: it lives as long as the
    process, and later full collections need not walk it."""
    gc.disable()
    try:
        loaded, rebuilt = await load_or_rebuild(client, settings, rule_fields, stop=stop)
        index = RuleIndex()
        index.load(loaded.rules)
    finally:
        gc.enable()
    gc.freeze()
    return index, loaded.next_offset, rebuilt


async def warm_index(settings: Settings, stop: asyncio.Event) -> tuple[RuleIndex, int]:
    """The index from the snapshot (or a rebuild), and the first offset it does not cover."""
    client = redis.from_url(settings.redis_url)
    try:
        index, next_offset, rebuilt = await load_index(client, settings, stop)
    finally:
        await client.aclose()
    log.info("warmed %d rules from the %s, up to rule.changed offset %d",
             len(index), "rebuilt snapshot" if rebuilt else "snapshot", next_offset)
    return index, next_offset
