"""The Redis snapshot store on the real Redis: a full write read back, batches applied
atomically by seq, and every kind of damage refused rather than patched."""

import hmac
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
import redis.asyncio as redis
from pydantic import SecretStr

from alerting.common.redis_client import redis_client
from alerting.rules import snapshot
from alerting.rules.changelog import DELETE, UPSERT
from alerting.rules.snapshot import Snapshot, SnapshotCorrupt, SnapshotIncomplete
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2, rule_pb2


@pytest.fixture
async def client(stack_settings: StackSettings) -> AsyncIterator[redis.Redis]:
    connection = redis_client(stack_settings)
    yield connection
    await connection.aclose()


def rule(source: str, rule_id: str | None = None, version: int = 1) -> rule_pb2.Rule:
    return rule_pb2.Rule(rule_id=rule_id or str(uuid.uuid4()), client_id=str(uuid.uuid4()), severity="*",
                         source=source, name="*", emails=["a@x.io"], enabled=True, version=version)


def upsert(seq: int, upserted: rule_pb2.Rule) -> events_pb2.RuleChanged:
    return events_pb2.RuleChanged(schema_version=1, seq=seq, op=UPSERT, rule_id=upserted.rule_id, rule=upserted)


def delete(seq: int, rule_id: str) -> events_pb2.RuleChanged:
    return events_pb2.RuleChanged(schema_version=1, seq=seq, op=DELETE, rule_id=rule_id)


def sources(loaded: Snapshot[rule_pb2.Rule] | None) -> dict[str, str]:
    assert loaded is not None
    return {r.rule_id: r.source for r in loaded.rules}


async def test_nothing_written_loads_as_none(client: redis.Redis, stack_settings: StackSettings) -> None:
    assert await snapshot.load(client, stack_settings) is None


async def test_a_full_write_reads_back_converted_or_not(client: redis.Redis, stack_settings: StackSettings) -> None:
    rules = [rule(f"s{n}") for n in range(5)]
    await snapshot.write_full(client, stack_settings, Snapshot(rules, version=7, next_offset=12))
    loaded = await snapshot.load(client, stack_settings)
    assert loaded is not None
    assert (sorted(r.rule_id for r in loaded.rules), loaded.version, loaded.next_offset) == (
        sorted(r.rule_id for r in rules), 7, 12)
    converted = await snapshot.load_converted(client, stack_settings, lambda r: r.source)
    assert converted is not None and sorted(converted.rules) == [f"s{n}" for n in range(5)]


async def test_changes_newer_than_the_version_apply_and_older_ones_are_skipped(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    kept, gone = rule("db"), rule("web")
    await snapshot.write_full(client, stack_settings, Snapshot([kept, gone], version=3, next_offset=3))
    changed = rule("api", kept.rule_id, version=2)
    batch = [(3, upsert(2, rule("stale"))), (4, upsert(4, changed)), (5, delete(5, gone.rule_id))]
    assert await snapshot.apply_changes(client, stack_settings, batch, 3, 6) == 2
    loaded = await snapshot.load(client, stack_settings)
    assert sources(loaded) == {kept.rule_id: "api"}
    assert loaded is not None and (loaded.version, loaded.next_offset) == (5, 6)


async def test_changes_at_offsets_the_snapshot_covers_are_not_applied_again(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    """Read again after a crash between the write and the commit: whatever their seqs."""
    kept = rule("db")
    await snapshot.write_full(client, stack_settings, Snapshot([kept], version=3, next_offset=3))
    batch = [(1, upsert(9, rule("again"))), (2, delete(10, kept.rule_id)), (3, upsert(4, rule("web", kept.rule_id)))]
    assert await snapshot.apply_changes(client, stack_settings, batch, 1, 4) == 1
    loaded = await snapshot.load(client, stack_settings)
    assert sources(loaded) == {kept.rule_id: "web"}
    assert loaded is not None and (loaded.version, loaded.next_offset) == (4, 4)


async def test_a_batch_beyond_what_the_snapshot_covers_is_refused(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    first = rule("db")
    await snapshot.write_full(client, stack_settings, Snapshot([first], version=3, next_offset=3))
    with pytest.raises(SnapshotIncomplete, match="covers rule.changed offsets before 3, the batch starts at 4"):
        await snapshot.apply_changes(client, stack_settings, [(4, upsert(4, rule("web")))], 4, 5)
    assert sources(await snapshot.load(client, stack_settings)) == {first.rule_id: "db"}


def in_another_chunk(than: rule_pb2.Rule, source: str) -> rule_pb2.Rule:
    while snapshot.chunk_of((other := rule(source)).rule_id) == snapshot.chunk_of(than.rule_id):
        pass
    return other


async def test_a_snapshot_that_lost_rules_or_metadata_is_refused(
    client: redis.Redis, stack_settings: StackSettings,
) -> None:
    first = rule("db")
    second = in_another_chunk(first, "web")
    await snapshot.write_full(client, stack_settings, Snapshot([first, second], version=1, next_offset=1))
    await client.hdel(stack_settings.redis_key(snapshot.SNAPSHOT_KEY), snapshot.chunk_of(first.rule_id))
    with pytest.raises(SnapshotIncomplete, match="it holds 1 rule chunks, its metadata says 2"):
        await snapshot.apply_changes(client, stack_settings, [(1, upsert(2, rule("api")))], 1, 2)
    with pytest.raises(SnapshotCorrupt, match="snapshot holds 1 rule chunks, its metadata says 2"):
        await snapshot.load(client, stack_settings)
    await client.delete(stack_settings.redis_key(snapshot.META_KEY))
    with pytest.raises(SnapshotIncomplete, match="no snapshot metadata"):
        await snapshot.apply_changes(client, stack_settings, [(1, upsert(2, rule("api")))], 1, 2)


async def test_damage_reads_as_corrupt(client: redis.Redis, stack_settings: StackSettings) -> None:
    only = rule("db")
    await snapshot.write_full(client, stack_settings, Snapshot([only], version=1, next_offset=1))
    key, chunk = snapshot.signing_key(stack_settings), snapshot.chunk_of(only.rule_id)
    for garbage in (b"\xff\x00not a chunk", b'[["r1"],[],[0],[0],[0],[0],[],[0],[true],[1]]\n[]',
                    b'[["r1","r2"],["c","*"],[0],[1],[1],[1],[[["a@x.io"],[]]],[0],[true],[1]]\n[]'):
        await client.hset(stack_settings.redis_key(snapshot.SNAPSHOT_KEY), chunk, snapshot.signed(key, chunk, garbage))
        with pytest.raises(SnapshotCorrupt, match="rule chunk"):
            await snapshot.load(client, stack_settings)
        with pytest.raises(SnapshotIncomplete, match="rule chunk"):
            await snapshot.apply_changes(client, stack_settings, [(1, delete(2, only.rule_id))], 1, 2)
    await client.set(stack_settings.redis_key(snapshot.META_KEY), "not a hash")
    with pytest.raises(SnapshotCorrupt, match="unreadable snapshot"):
        await snapshot.load(client, stack_settings)


async def write_older_format(client: redis.Redis, settings: StackSettings, only: rule_pb2.Rule, version: int,
                             next_offset: int) -> None:
    """A snapshot of one rule as the previous release wrote it: an entry per rule, its
    metadata signed without a format."""
    key = snapshot.signing_key(settings)
    snapshot_key, version_key, meta_key, _ = snapshot.keys(settings)
    await client.hset(snapshot_key, only.rule_id, snapshot.signed(key, only.rule_id, only.SerializeToString()))
    await client.set(version_key, version)
    await client.hset(meta_key, mapping={"next_offset": next_offset, "count": 1, "grants": 0, "signature": hmac.digest(
        key, b"meta\0%d\0%d\0%d\0%d" % (version, next_offset, 1, 0), "sha256")})


async def test_a_snapshot_of_the_older_format_is_never_read_as_this_one(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    """What an upgrade finds: an entry per rule, its metadata signed without a format. A
    reader finds it corrupt and a writer incomplete, so both rebuild it from Postgres."""
    await write_older_format(client, stack_settings, rule("db"), version=1, next_offset=1)
    meta_key = stack_settings.redis_key(snapshot.META_KEY)
    with pytest.raises(SnapshotCorrupt, match="format .* written by another release"):
        await snapshot.load(client, stack_settings)
    with pytest.raises(SnapshotIncomplete, match="format .* written by another release"):
        await snapshot.apply_changes(client, stack_settings, [(1, upsert(2, rule("web")))], 1, 2)
    # Its metadata given this format's fields without the key: not signed.
    await client.hset(meta_key, mapping={"format": snapshot.FORMAT, "chunks": 1})
    with pytest.raises(SnapshotCorrupt, match="not signed with the rule snapshot key"):
        await snapshot.load(client, stack_settings)


async def test_every_field_of_a_rule_survives_its_chunk_and_its_neighbours_survive_its_changes(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    full = rule_pb2.Rule(rule_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), severity="HIGH", source="db",
                         name="disk", emails=["a@x.io", "b@x.io"], enabled=False, version=4, updated_by="key-1",
                         receiver_ids=["r-1"])
    full.created_at.FromNanoseconds(1_700_000_000_123_456_789)
    full.updated_at.FromNanoseconds(1_700_000_100_000_000_001)
    [chunk] = {snapshot.chunk_of(full.rule_id)}
    neighbours: list[rule_pb2.Rule] = []
    while len(neighbours) < 3:  # rules of the same chunk
        if snapshot.chunk_of((candidate := rule("web")).rule_id) == chunk:
            neighbours.append(candidate)
    await snapshot.write_full(client, stack_settings, Snapshot([full, *neighbours], version=1, next_offset=1))
    loaded = await snapshot.load(client, stack_settings)
    assert loaded is not None and sorted(loaded.rules, key=lambda r: r.rule_id) == sorted(
        [full, *neighbours], key=lambda r: r.rule_id)
    changed = rule_pb2.Rule(rule_id=full.rule_id, client_id=full.client_id, severity="*", source="api", name="*",
                            emails=["c@x.io"], enabled=True, version=5)
    batch = [(1, upsert(2, changed)), (2, delete(3, neighbours[0].rule_id))]
    assert await snapshot.apply_changes(client, stack_settings, batch, 1, 3) == 2
    loaded = await snapshot.load(client, stack_settings)
    assert loaded is not None and sorted(loaded.rules, key=lambda r: r.rule_id) == sorted(
        [changed, *neighbours[1:]], key=lambda r: r.rule_id)
    assert (loaded.version, loaded.next_offset) == (3, 3)


# ---------------------------------------------------------------- signatures
FORGER = StackSettings(rule_snapshot_key=SecretStr("not the platform's key"))


async def test_a_rule_not_signed_with_the_key_is_rejected(client: redis.Redis, stack_settings: StackSettings) -> None:
    genuine = rule("db")
    chunk = snapshot.chunk_of(genuine.rule_id)
    await snapshot.write_full(client, stack_settings, Snapshot([genuine], version=1, next_offset=1))
    # The same rule, now matching every source.
    forged = snapshot.encode_chunk([snapshot.row_of(rule("*", rule_id=genuine.rule_id))])
    for value in (forged,  # unsigned
                  snapshot.signed(snapshot.signing_key(FORGER), chunk, forged),
                  # a genuine signature of another chunk
                  cast(bytes, await client.hget(stack_settings.redis_key(snapshot.SNAPSHOT_KEY), chunk))[:32] + forged):
        await client.hset(stack_settings.redis_key(snapshot.SNAPSHOT_KEY), chunk, value)
        with pytest.raises(SnapshotCorrupt, match=f"entry {chunk} of the snapshot is not signed"):
            await snapshot.load(client, stack_settings)


async def test_a_forged_version_offset_or_count_is_rejected_by_readers_and_by_the_writer(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    first = rule("db")
    await snapshot.write_full(client, stack_settings, Snapshot([first], version=3, next_offset=3))
    version_key, meta_key = (stack_settings.redis_key(name) for name in (snapshot.VERSION_KEY, snapshot.META_KEY))
    # A version far ahead would make every genuine change after it look old and be skipped.
    for key, field, value in ((version_key, None, "1000000"), (meta_key, "next_offset", "1000"),
                              (meta_key, "count", "0"), (meta_key, "chunks", "0")):
        saved = cast(bytes, await client.get(version_key)), cast(dict[bytes, bytes], await client.hgetall(meta_key))
        if field is None:
            await client.set(key, value)
        else:
            await client.hset(key, field, value)
        with pytest.raises(SnapshotCorrupt, match="not signed with the rule snapshot key"):
            await snapshot.load(client, stack_settings)
        with pytest.raises(SnapshotIncomplete, match="not signed with the rule snapshot key"):
            await snapshot.apply_changes(client, stack_settings, [(3, upsert(4, rule("web")))], 3, 4)
        await client.set(version_key, saved[0])
        for saved_field, saved_value in saved[1].items():
            await client.hset(meta_key, saved_field, saved_value)
    assert sources(await snapshot.load(client, stack_settings)) == {first.rule_id: "db"}


async def test_what_a_batch_leaves_is_signed_and_a_batch_cut_short_before_its_signature_is_distrusted(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    await snapshot.write_full(client, stack_settings, Snapshot([], version=0, next_offset=0))
    added = rule("db")
    assert await snapshot.apply_changes(client, stack_settings, [(0, upsert(1, added))], 0, 1) == 1
    loaded = await snapshot.load(client, stack_settings)
    assert loaded is not None and (sources(loaded), loaded.version, loaded.next_offset) == ({added.rule_id: "db"}, 1, 1)
    # A writer that died between its script and its signature leaves metadata unsigned.
    await client.hdel(stack_settings.redis_key(snapshot.META_KEY), "signature")
    with pytest.raises(SnapshotCorrupt, match="not signed"):
        await snapshot.load(client, stack_settings)


async def test_without_a_key_the_snapshot_is_neither_written_nor_read(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    keyless = stack_settings.model_copy(update={"rule_snapshot_key": None})
    for attempt in (snapshot.write_full(client, keyless, Snapshot([], version=0, next_offset=0)),
                    snapshot.load(client, keyless)):
        with pytest.raises(ValueError, match="ALERTING_RULE_SNAPSHOT_KEY"):
            await attempt
