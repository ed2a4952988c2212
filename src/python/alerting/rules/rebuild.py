"""Rebuilding the rule snapshot from Postgres, and loading it with a rebuild when it cannot
be trusted (missing, damaged, or not signed with the snapshot key): the one way the rule
path ever scans the rules (and source grants) tables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

import redis.asyncio as redis

from alerting.common import db
from alerting.common.retry import retry_until_done
from alerting.common.settings import RuleRebuildSettings
from alerting.rules import snapshot
from alerting.rules.changelog import rule_changed_holds, rule_changed_position
from alerting.rules.records import GRANT_COLUMNS, RULE_COLUMNS, grant_from_row, rule_from_row
from alerting.rules.snapshot import Snapshot, SnapshotCorrupt, signing_key
from alerting.v1 import rule_pb2

log = logging.getLogger(__name__)
R = TypeVar("R")
LAST_ISSUED_SEQ = "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('rule_outbox', 'seq')), 0)"


async def read_database(settings: RuleRebuildSettings, *, stop: asyncio.Event | None = None) -> Snapshot[rule_pb2.Rule]:
    """A snapshot of the rules and source grants tables. The log position is read first, so
    every change the scan may miss lies after it and is applied by whoever reads on from
    there. The snapshot's version is the seq of the log's last change, but never above the
    last seq the outbox issued: a forged change at the log's end must not make every genuine
    change after it look old."""
    next_offset, last_seq = await rule_changed_position(settings, stop=stop)
    connection = await db.connect(settings, db.DatabaseRole.RULE_READER)
    try:
        rows = await connection.fetch(f"SELECT {RULE_COLUMNS} FROM rules")
        grants = await connection.fetch(f"SELECT {GRANT_COLUMNS} FROM source_grants")
        issued = await connection.fetchval(LAST_ISSUED_SEQ)
    finally:
        await connection.close()
    return Snapshot([rule_from_row(row) for row in rows], min(last_seq, issued), next_offset,
                    [grant_from_row(row) for row in grants])


async def rebuild_from_database(
    client: redis.Redis, settings: RuleRebuildSettings, *, stop: asyncio.Event | None = None
) -> Snapshot[rule_pb2.Rule]:
    """Scan the rules and source grants into a new, signed snapshot in Redis (read_database),
    under the writers' lock."""
    async with snapshot.lock(client, settings):
        rebuilt = await read_database(settings, stop=stop)
        await snapshot.write_full(client, settings, rebuilt)
        return rebuilt


async def load_or_rebuild(
    client: redis.Redis,
    settings: RuleRebuildSettings,
    convert: Callable[[rule_pb2.Rule], R],
    *,
    stop: asyncio.Event | None = None,
    write_back: bool = True,
) -> tuple[Snapshot[R], bool]:
    """The snapshot (its rules passed through `convert`, as by snapshot.load_converted),
    rebuilt from Postgres when it is missing, corrupt or not signed with the snapshot key, or
    when `rule.changed` no longer holds the offset it covers up to; and whether it was
    rebuilt. The rebuild replaces the snapshot in Redis, unless not `write_back` (a reader
    that may not write it, the evaluator: the rule-updater rewrites it). An outage of Redis,
    Postgres or Kafka is waited out; a corrupt snapshot is rebuilt, not retried."""
    signing_key(settings)  # no key is a configuration error, not a snapshot to rebuild for ever
    instead = "rebuilding it from Postgres" if write_back else "reading the rules from Postgres instead"

    async def attempt() -> tuple[Snapshot[R], bool]:
        try:
            loaded = await snapshot.load_converted(client, settings, convert)
        except SnapshotCorrupt as error:
            log.warning("rule snapshot is corrupt (%s): %s", error, instead)
        else:
            if loaded is None:
                log.warning("no rule snapshot in Redis: %s", instead)
            elif not await rule_changed_holds(settings, loaded.next_offset, stop=stop):
                log.warning("rule snapshot needs rule.changed from offset %d, which the log no longer holds: %s",
                            loaded.next_offset, instead)
            else:
                return loaded, False
        if write_back:
            rebuilt = await rebuild_from_database(client, settings, stop=stop)
        else:
            rebuilt = await read_database(settings, stop=stop)
        return Snapshot([convert(rule) for rule in rebuilt.rules], rebuilt.version, rebuilt.next_offset,
                        rebuilt.grants), True

    return await retry_until_done(attempt, settings, what="loading the rule snapshot", stop=stop)
