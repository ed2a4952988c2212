"""The evaluator's warm start: its rule index from the Redis snapshot, once its signatures
hold (alerting.rules.snapshot), never from a scan of the rules table; from Postgres only
when the snapshot is missing, corrupt, not signed with the snapshot key or of another
format, or when `rule.changed` no longer holds its offset. The evaluator only reads Redis
(its ACL user is read-only on the snapshot): it never writes a rebuild back, the
rule-updater does."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from alerting.common.redis_client import redis_client
from alerting.common.retry import retry_until_done
from alerting.common.settings import RuleRebuildSettings
from alerting.evaluator.alerts import indexed_grant, rule_endpoints, rule_fields
from alerting.evaluator.matcher import RuleIndex
from alerting.rules import snapshot
from alerting.rules.changelog import rule_changed_holds
from alerting.rules.rebuild import read_database
from alerting.rules.snapshot import RuleColumns, Snapshot, SnapshotCorrupt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmStart:
    index: RuleIndex
    next_offset: int  # the first `rule.changed` offset the index does not cover
    version: int  # the seq of the newest change it holds
    rebuilt: bool  # whether the rules had to be read from Postgres


def build_index(loaded: Snapshot[RuleColumns]) -> RuleIndex:
    """The index of the snapshot's chunks, loaded as one set of columns (each chunk's
    distinct recipients made endpoints once)."""
    columns: list[list[Any]] = [[] for _ in range(8)]
    rule_ids, client_ids, severities, sources, names, endpoints, enabled, versions = columns
    for chunk in loaded.rules:
        for held, more in ((rule_ids, chunk.rule_ids), (client_ids, chunk.client_ids), (severities, chunk.severities),
                           (sources, chunk.sources), (names, chunk.names), (enabled, chunk.enabled),
                           (versions, chunk.versions)):
            held += more
        # Most rules have no receiver: their endpoints are their emails, no call needed.
        made = [rule_endpoints(emails, receiver_ids) if receiver_ids else emails
                for emails, receiver_ids in chunk.recipients]
        endpoints += map(made.__getitem__, chunk.recipients_of)
    index = RuleIndex()
    index.load_columns(*columns)
    index.load_grants(indexed_grant(grant) for grant in loaded.grants)
    return index


async def load_index(
    client: redis.Redis, settings: RuleRebuildSettings, stop: asyncio.Event | None = None,
) -> WarmStart:
    """The index of the snapshot (or of the rules table, if need be). An outage of Redis,
    Postgres or Kafka is waited out; a snapshot that cannot be used is not retried.

    The cyclic garbage collector is paused meanwhile (a million new objects would trigger it
    over and over), and the index is then frozen out of its reach: it lives as long as the
    process, and later full collections need not walk it."""
    snapshot.signing_key(settings)  # no key is a configuration error, not a snapshot to read Postgres for ever

    async def attempt() -> WarmStart:
        loaded = await usable_snapshot(client, settings, stop)
        if loaded is not None:
            return WarmStart(build_index(loaded), loaded.next_offset, loaded.version, False)
        rebuilt = await read_database(settings, stop=stop)
        index = RuleIndex()
        index.load(rule_fields(rule) for rule in rebuilt.rules)
        index.load_grants(indexed_grant(grant) for grant in rebuilt.grants)
        return WarmStart(index, rebuilt.next_offset, rebuilt.version, True)

    gc.disable()
    try:
        warm = await retry_until_done(attempt, settings, what="loading the rule snapshot", stop=stop)
    finally:
        gc.enable()
    gc.freeze()
    return warm


async def usable_snapshot(
    client: redis.Redis, settings: RuleRebuildSettings, stop: asyncio.Event | None = None,
) -> Snapshot[RuleColumns] | None:
    """The snapshot as columns, or None (and why, logged) when the rules must be read from Postgres."""
    try:
        stored = await snapshot.read_stored(client, settings)
        loaded = None if stored is None else snapshot.load_columns(settings, stored)
    except SnapshotCorrupt as error:
        log.warning("rule snapshot is corrupt (%s): reading the rules from Postgres instead", error)
        return None
    if loaded is None:
        log.warning("no rule snapshot in Redis: reading the rules from Postgres instead")
    elif not await rule_changed_holds(settings, loaded.next_offset, stop=stop):
        log.warning("rule snapshot needs rule.changed from offset %d, which the log no longer holds: reading the "
                    "rules from Postgres instead", loaded.next_offset)
        return None
    return loaded


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
