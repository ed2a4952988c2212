"""The Redis rule snapshot that evaluators warm from, written by the rule-updater.

Keys (under Settings.redis_key_prefix):
  rules:snapshot       hash  rule_id -> serialized alerting.v1.Rule
  rules:version        the seq of the last `rule.changed` change applied (monotonic)
  rules:snapshot:meta  hash  next_offset (the first `rule.changed` offset NOT covered),
                             count (entries in rules:snapshot, to detect damage)
A batch of changes is applied by one Lua script, so the three keys always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf.message import DecodeError

from alerting.v1 import events_pb2, rule_pb2
from common import topics
from common.settings import Settings

SNAPSHOT_KEY = "rules:snapshot"
VERSION_KEY = "rules:version"
META_KEY = "rules:snapshot:meta"
LOCK_KEY = "rules:snapshot:lock"
LOAD_CHUNK = 20_000

# ARGV: next_offset, then (seq, op U|D, rule_id, payload) per change, in log order.
_APPLY_CHANGES = """
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
local applied = 0
for i = 2, #ARGV, 4 do
  local seq = tonumber(ARGV[i])
  if seq > version then
    if ARGV[i + 1] == 'U' then
      redis.call('HSET', KEYS[1], ARGV[i + 2], ARGV[i + 3])
    else
      redis.call('HDEL', KEYS[1], ARGV[i + 2])
    end
    version = seq
    applied = applied + 1
  end
end
redis.call('SET', KEYS[2], version)
local next_offset = math.max(tonumber(ARGV[1]), tonumber(redis.call('HGET', KEYS[3], 'next_offset') or '0'))
redis.call('HSET', KEYS[3], 'next_offset', next_offset, 'count', redis.call('HLEN', KEYS[1]))
return applied
"""


class SnapshotCorrupt(Exception):
    pass


@dataclass
class Snapshot:
    rules: list[rule_pb2.Rule]
    version: int
    next_offset: int


def keys(settings: Settings) -> list[str]:
    return [settings.redis_key(SNAPSHOT_KEY), settings.redis_key(VERSION_KEY), settings.redis_key(META_KEY)]


def lock(client: redis.Redis, settings: Settings):
    """Serializes snapshot writers (the rule-updater's batches and any rebuild)."""
    return client.lock(settings.redis_key(LOCK_KEY), timeout=120, blocking_timeout=300)


async def load(client: redis.Redis, settings: Settings) -> Snapshot | None:
    """The snapshot, None when there is none; SnapshotCorrupt when it cannot be trusted."""
    snapshot_key, version_key, meta_key = keys(settings)
    meta = await client.hgetall(meta_key)
    version = await client.get(version_key)
    if not meta and version is None:
        return None
    try:
        next_offset, count, version = int(meta[b"next_offset"]), int(meta[b"count"]), int(version)
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotCorrupt(f"bad snapshot metadata: {error!r}") from error
    rules: list[rule_pb2.Rule] = []
    parse = rule_pb2.Rule.FromString
    cursor = 0
    try:
        while True:
            cursor, chunk = await client.hscan(snapshot_key, cursor, count=LOAD_CHUNK)
            rules.extend(parse(payload) for payload in chunk.values())
            if cursor == 0:
                break
    except DecodeError as error:
        raise SnapshotCorrupt(f"undecodable rule in snapshot: {error}") from error
    if len(rules) != count:
        raise SnapshotCorrupt(f"snapshot holds {len(rules)} rules, its metadata says {count}")
    return Snapshot(rules, version, next_offset)


async def apply_changes(
    client: redis.Redis, settings: Settings, changes: list[events_pb2.RuleChanged], next_offset: int
) -> int:
    """Apply changes newer than rules:version, atomically; returns how many applied."""
    arguments: list[object] = [next_offset]
    for change in changes:
        upsert = change.op == events_pb2.RuleChanged.OP_UPSERT
        payload = change.rule.SerializeToString() if upsert else b""
        arguments += [change.seq, "U" if upsert else "D", change.rule_id, payload]
    return int(await client.eval(_APPLY_CHANGES, 3, *keys(settings), *arguments))


async def write_full(client: redis.Redis, settings: Settings, snapshot: Snapshot) -> None:
    """Replace the whole snapshot: written beside it in chunks, then swapped in atomically,
    so readers never see half of it and Redis is never blocked for the whole write."""
    snapshot_key, version_key, meta_key = keys(settings)
    staging_key = f"{snapshot_key}:staging"
    await client.delete(staging_key)
    for start in range(0, len(snapshot.rules), LOAD_CHUNK):
        chunk = snapshot.rules[start : start + LOAD_CHUNK]
        await client.hset(staging_key, mapping={rule.rule_id: rule.SerializeToString() for rule in chunk})
    async with client.pipeline(transaction=True) as pipe:
        if snapshot.rules:
            pipe.rename(staging_key, snapshot_key)
        else:
            pipe.delete(snapshot_key)
        pipe.set(version_key, snapshot.version)
        pipe.hset(meta_key, mapping={"next_offset": snapshot.next_offset, "count": len(snapshot.rules)})
        await pipe.execute()


def rule_from_row(row: asyncpg.Record) -> rule_pb2.Rule:
    rule = rule_pb2.Rule(
        rule_id=str(row["rule_id"]),
        client_id=str(row["client_id"]),
        severity=row["severity"],
        source=row["source"],
        name=row["name"],
        emails=row["emails"],
        enabled=row["enabled"],
        version=row["version"],
    )
    rule.created_at.FromDatetime(row["created_at"])
    rule.updated_at.FromDatetime(row["updated_at"])
    return rule


async def rule_changed_position(settings: Settings) -> tuple[int, int]:
    """(end offset of `rule.changed`, seq of the change just before it, or 0)."""
    partition = TopicPartition(settings.topic(topics.RULE_CHANGED), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return 0, 0
        consumer.seek(partition, end - 1)
        batch = await consumer.getmany(partition, timeout_ms=10_000, max_records=1)
        records = batch.get(partition, [])
        if not records:
            raise RuntimeError("could not read the last rule change")
        return end, events_pb2.RuleChanged.FromString(records[0].value).seq
    finally:
        await consumer.stop()


async def rebuild_from_database(client: redis.Redis, settings: Settings) -> Snapshot:
    """Scan the rules table into a new snapshot. The log position is read first, so every
    change the scan may miss lies after it and is applied by whoever reads on from there."""
    async with lock(client, settings):
        next_offset, version = await rule_changed_position(settings)
        connection = await asyncpg.connect(settings.database_url)
        try:
            rows = await connection.fetch(
                "SELECT rule_id, client_id, severity, source, name, emails, enabled, version,"
                " created_at, updated_at FROM rules"
            )
        finally:
            await connection.close()
        snapshot = Snapshot([rule_from_row(row) for row in rows], version, next_offset)
        await write_full(client, settings, snapshot)
        return snapshot


async def load_or_rebuild(client: redis.Redis, settings: Settings, log) -> tuple[Snapshot, bool]:
    """The snapshot, rebuilt from Postgres when missing or corrupt; and whether it was rebuilt."""
    try:
        snapshot = await load(client, settings)
        if snapshot is not None:
            return snapshot, False
        log.warning("no rule snapshot in Redis: rebuilding it from Postgres")
    except SnapshotCorrupt as error:
        log.warning("rule snapshot is corrupt (%s): rebuilding it from Postgres", error)
    return await rebuild_from_database(client, settings), True
