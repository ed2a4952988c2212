"""Source grants in the Redis snapshot, on the real stack: written, read back and changed by
the same Lua script as the rules; a snapshot written before grants existed, that lost
grants or holds one not signed with its key, is refused (and rebuilt from Postgres)."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis
from pydantic import SecretStr

from alerting.common.redis_client import redis_client
from alerting.rules import snapshot
from alerting.rules.changelog import GRANT, REVOKE, UPSERT, grant_key
from alerting.rules.rebuild import load_or_rebuild
from alerting.rules.snapshot import Snapshot, SnapshotCorrupt, SnapshotIncomplete, unconverted
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2, rule_pb2


@pytest.fixture
async def client(stack_settings: StackSettings) -> AsyncIterator[redis.Redis]:
    connection = redis_client(stack_settings)
    yield connection
    await connection.aclose()


def grant(source: str, prefix: bool = False, client_id: str = "11111111-1111-4111-8111-111111111111"
          ) -> rule_pb2.SourceGrant:
    return rule_pb2.SourceGrant(client_id=client_id, source=source, prefix=prefix)


def changed(seq: int, op: events_pb2.RuleChanged.Op.ValueType, given: rule_pb2.SourceGrant) -> events_pb2.RuleChanged:
    return events_pb2.RuleChanged(schema_version=1, seq=seq, op=op, client_id=given.client_id, grant=given)


def held(loaded: Snapshot[rule_pb2.Rule] | None) -> set[tuple[str, str, bool]]:
    assert loaded is not None
    return {(g.client_id, g.source, g.prefix) for g in loaded.grants}


async def test_grants_are_written_read_back_and_changed_by_seq(
    client: redis.Redis, stack_settings: StackSettings,
) -> None:
    kept, revoked = grant("db"), grant("db", prefix=True)
    await snapshot.write_full(client, stack_settings, Snapshot([], version=3, next_offset=3, grants=[kept, revoked]))
    assert held(await snapshot.load(client, stack_settings)) == {(kept.client_id, "db", False),
                                                                  (kept.client_id, "db", True)}
    rule = rule_pb2.Rule(rule_id=str(uuid.uuid4()), client_id=kept.client_id, severity="*", source="*", name="x",
                         emails=["a@x.io"], enabled=True, version=1)
    batch = [(3, changed(2, GRANT, grant("stale"))), (4, changed(4, REVOKE, revoked)),
             (5, changed(5, GRANT, grant("web"))), (6, changed(6, REVOKE, grant("never-granted"))),
             (7, events_pb2.RuleChanged(schema_version=1, seq=7, op=UPSERT, rule_id=rule.rule_id, rule=rule))]
    assert await snapshot.apply_changes(client, stack_settings, batch, 3, 8) == 4
    loaded = await snapshot.load(client, stack_settings)
    assert held(loaded) == {(kept.client_id, "db", False), (kept.client_id, "web", False)}
    assert loaded is not None and ([r.rule_id for r in loaded.rules], loaded.version) == ([rule.rule_id], 7)


async def test_a_snapshot_written_before_grants_existed_is_refused_and_rebuilt_with_them(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    """What an upgrade finds: a snapshot of the rules alone. Taken as it is, every rule would
    match nothing (no grants) or, worse, an old evaluator's view would linger: it is rebuilt
    from Postgres, where migration 000011 granted each client its rules' sources."""
    await snapshot.write_full(client, stack_settings, Snapshot([], version=1, next_offset=0))
    await client.hdel(stack_settings.redis_key(snapshot.META_KEY), "grants")
    with pytest.raises(SnapshotCorrupt, match="no grant count in the snapshot metadata"):
        await snapshot.load(client, stack_settings)
    with pytest.raises(SnapshotIncomplete, match="no grant count: written before source grants existed"):
        await snapshot.apply_changes(client, stack_settings, [(0, changed(2, GRANT, grant("db")))], 0, 1)

    connection = await asyncpg.connect(stack_settings.database_url)
    try:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id::text")
        await connection.execute("INSERT INTO source_grants (client_id, source, prefix, created_by)"
                                 " VALUES ($1, 'db', false, 'migration')", client_id)
    finally:
        await connection.close()
    loaded, rebuilt = await load_or_rebuild(client, stack_settings, unconverted)
    assert rebuilt and held(loaded) == {(client_id, "db", False)}
    assert [g.created_by for g in loaded.grants] == ["migration"]
    assert held(await snapshot.load(client, stack_settings)) == {(client_id, "db", False)}


async def test_a_snapshot_that_lost_grants_is_refused(client: redis.Redis, stack_settings: StackSettings) -> None:
    await snapshot.write_full(client, stack_settings, Snapshot([], version=1, next_offset=1,
                                                               grants=[grant("db"), grant("web")]))
    await client.hdel(stack_settings.redis_key(snapshot.GRANTS_KEY), grant_key(grant("db")))
    with pytest.raises(SnapshotIncomplete, match="it holds 1 grants, its metadata says 2"):
        await snapshot.apply_changes(client, stack_settings, [(1, changed(2, GRANT, grant("api")))], 1, 2)
    with pytest.raises(SnapshotCorrupt, match="snapshot holds 1 grants, its metadata says 2"):
        await snapshot.load(client, stack_settings)
    await client.hset(stack_settings.redis_key(snapshot.GRANTS_KEY), "garbage", snapshot.signed(
        snapshot.signing_key(stack_settings), "garbage", b"\xff\x00not a grant"))
    with pytest.raises(SnapshotCorrupt, match="undecodable grant"):
        await snapshot.load(client, stack_settings)


async def test_a_grant_injected_into_redis_is_rejected(client: redis.Redis, stack_settings: StackSettings) -> None:
    """Whoever writes Redis but lacks the snapshot's key cannot give a tenant another's source:
    the entry of a genuine grant, rewritten to grant a prefix of every source, is refused."""
    genuine = grant("db")
    await snapshot.write_full(client, stack_settings, Snapshot([], version=1, next_offset=1, grants=[genuine]))
    forged = grant("d", prefix=True).SerializeToString()
    field = grant_key(genuine)
    stored = await client.hget(stack_settings.redis_key(snapshot.GRANTS_KEY), field)
    assert isinstance(stored, bytes)
    forger = stack_settings.model_copy(update={"rule_snapshot_key": SecretStr("not the platform's key")})
    for value in (forged, snapshot.signed(snapshot.signing_key(forger), field, forged), stored[:32] + forged):
        await client.hset(stack_settings.redis_key(snapshot.GRANTS_KEY), field, value)
        with pytest.raises(SnapshotCorrupt, match=f"entry {field} of the snapshot is not signed"):
            await snapshot.load(client, stack_settings)
