"""Evaluator warm start with 1M rules of 10k clients (and the clients' 60k source grants):
from the Redis snapshot versus a Postgres scan of the rules and grants tables (the fallback
when the snapshot is missing), in the same run; and the snapshot's path in its three
steps: reading Redis (HSCAN of the chunks, and the grants), decoding (signatures checked,
columns parsed) and building the index.

    deploy/local-stack up && ./pants run bench/warm_start.py      (about 4 minutes)
    deploy/local-stack up && ./pants run bench/warm_start.py -- --smoke   (seconds: that it runs)
Uses its own Redis keys and a throwaway database; both are removed afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as redis
from workloads import full_or_smoke, make_grants, make_rules

from alerting.common.db import owner_url
from alerting.common.redis_client import redis_client
from alerting.evaluator.matcher import Grant, IndexedRule, RuleIndex
from alerting.evaluator.warm_start import build_index, load_index
from alerting.rules import snapshot
from alerting.testsupport import stack
from alerting.testsupport.stack import StackSettings
from alerting.v1 import rule_pb2

FULL = (1_000_000, 3)  # rules, repetitions
SMOKE = (2_000, 1)


def as_message(rule: IndexedRule) -> rule_pb2.Rule:
    return rule_pb2.Rule(rule_id=rule.rule_id, client_id=rule.client_id, severity=rule.severity, source=rule.source,
                         name=rule.name, emails=rule.emails, enabled=rule.enabled, version=rule.version)


async def fill_database(url: str, rules: list[IndexedRule], grants: list[Grant]) -> None:
    connection = await asyncpg.connect(url)
    try:
        clients = sorted({rule.client_id for rule in rules} | {grant.client_id for grant in grants})
        await connection.copy_records_to_table(
            "clients", records=[(uuid.UUID(c), "bench") for c in clients], columns=["client_id", "name"])
        await connection.copy_records_to_table(
            "source_grants", records=[(uuid.UUID(g.client_id), g.source, g.prefix, "bench") for g in grants],
            columns=["client_id", "source", "prefix", "created_by"])
        await connection.copy_records_to_table(
            "rules",
            records=[(uuid.UUID(r.rule_id), uuid.UUID(r.client_id), r.severity, r.source, r.name, list(r.emails))
                     for r in rules],
            columns=["rule_id", "client_id", "severity", "source", "name", "emails"])
    finally:
        await connection.close()


async def timed(what: str, operation: Callable[[], Awaitable[RuleIndex]], count: int, repetitions: int) -> float:
    seconds = []
    for _ in range(repetitions):
        started = time.perf_counter()
        index = await operation()
        seconds.append(time.perf_counter() - started)
        assert len(index) == count, len(index)
        del index
    print(f"{what}: {', '.join(f'{s:.2f}' for s in seconds)} s", file=sys.stderr)
    return statistics.median(seconds)


async def steps(client: redis.Redis, settings: StackSettings, count: int, repetitions: int) -> tuple[float, ...]:
    """The medians of the snapshot path's steps, each timed alone (the collector paused, as
    load_index does): reading Redis, decoding, building the index."""
    timings: list[tuple[float, float, float]] = []
    for _ in range(repetitions):
        gc.disable()
        try:
            started = time.perf_counter()
            stored = await snapshot.read_stored(client, settings)
            read = time.perf_counter()
            assert stored is not None
            loaded = snapshot.load_columns(settings, stored)
            decoded = time.perf_counter()
            index = build_index(loaded)
            built = time.perf_counter()
        finally:
            gc.enable()
        assert len(index) == count, len(index)
        timings.append((read - started, decoded - read, built - decoded))
        del stored, loaded, index
        gc.collect()
    for name, seconds in zip(("Redis read (HSCAN)", "decode", "build"), zip(*timings, strict=True), strict=True):
        print(f"  {name}: {', '.join(f'{s:.2f}' for s in seconds)} s", file=sys.stderr)
    return tuple(statistics.median(seconds) for seconds in zip(*timings, strict=True))


async def main(count: int, repetitions: int) -> None:
    base = StackSettings()
    base = base.model_copy(update={"database_url": owner_url(base)})  # creates and drops databases
    tag = stack.unique_name("bench")
    settings = base.model_copy(update={"redis_key_prefix": f"{tag}:", "topic_prefix": f"{tag}."})
    rules, grants = make_rules(count), make_grants()
    client = redis_client(settings)
    database_url = await stack.create_database(base.database_url, tag)
    try:
        stack.migrate_up(database_url)
        await fill_database(database_url, rules, grants)
        settings = settings.model_copy(update={"database_url": database_url})
        await stack.create_topics(settings)
        await snapshot.write_full(client, settings, snapshot.Snapshot(
            [as_message(r) for r in rules], 0, 0,
            [rule_pb2.SourceGrant(client_id=g.client_id, source=g.source, prefix=g.prefix) for g in grants]))
        del rules

        async def from_snapshot() -> RuleIndex:
            warm = await load_index(client, settings)
            assert not warm.rebuilt
            return warm.index

        async def from_postgres() -> RuleIndex:
            await client.delete(*snapshot.keys(settings))  # as after a loss of Redis' data
            warm = await load_index(client, settings)
            assert warm.rebuilt
            return warm.index

        warm = await timed("from the Redis snapshot", from_snapshot, count, repetitions)
        read, decode, build = await steps(client, settings, count, repetitions)
        scan = await timed("from a Postgres scan", from_postgres, count, repetitions)
    finally:
        await stack.delete_redis_keys(settings)
        await client.aclose()
        await stack.drop_database(base.database_url, tag)
        await stack.delete_topics(settings)
    print(f"| rules | ready from Redis snapshot (median of {repetitions}) | its Redis read (HSCAN) | decode | build "
          "| ready from Postgres scan | snapshot / Postgres |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {count:,} | {warm:.2f} s | {read:.2f} s | {decode:.2f} s | {build:.2f} s | {scan:.2f} s "
          f"| {warm / scan:.2f} |")


if __name__ == "__main__":
    asyncio.run(main(*full_or_smoke(__doc__, FULL, SMOKE)))
