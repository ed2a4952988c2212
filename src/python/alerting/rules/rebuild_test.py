"""Rebuilding the snapshot from Postgres, and loading it with a rebuild only when it cannot
be trusted, on the real stack."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as redis

from alerting.common import topics
from alerting.common.redis_client import redis_client
from alerting.rules import snapshot
from alerting.rules.changelog import UPSERT
from alerting.rules.rebuild import load_or_rebuild, rebuild_from_database
from alerting.rules.snapshot import Snapshot, unconverted
from alerting.testsupport.services import send
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2, rule_pb2


@pytest.fixture
async def client(stack_settings: StackSettings) -> AsyncIterator[redis.Redis]:
    connection = redis_client(stack_settings)
    yield connection
    await connection.aclose()


async def insert_rules(settings: StackSettings, *sources: str) -> dict[str, str]:
    """Rules of one new client, as the rule-service writes them: rule_id -> source."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('acme') RETURNING client_id")
        return {
            str(await connection.fetchval(
                "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, '*', $2, '*', $3)"
                " RETURNING rule_id", client_id, source, ["a@x.io"])): source
            for source in sources
        }
    finally:
        await connection.close()


async def issue_seqs_up_to(settings: StackSettings, seq: int) -> None:
    """As if the outbox had issued seqs up to `seq`."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("SELECT setval(pg_get_serial_sequence('rule_outbox', 'seq'), $1)", seq)
    finally:
        await connection.close()


async def publish_change(settings: StackSettings, seq: int) -> None:
    rule_id = str(uuid.uuid4())
    change = events_pb2.RuleChanged(schema_version=1, seq=seq, op=UPSERT, rule_id=rule_id, rule=rule_pb2.Rule(
        rule_id=rule_id, client_id=str(uuid.uuid4()), severity="*", source="x", name="*", emails=["a@x.io"]))
    await send(settings, topics.RULE_CHANGED, [change.SerializeToString()], keys=[rule_id.encode()])


async def test_a_rebuild_holds_every_rule_and_starts_at_the_end_of_the_log(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    expected = await insert_rules(stack_settings, "db", "web")
    await publish_change(stack_settings, 41)
    await publish_change(stack_settings, 42)
    # The outbox issued no seq yet: changes at the log's end claiming 41 and 42 are not its.
    rebuilt = await rebuild_from_database(client, stack_settings)
    assert ({r.rule_id: r.source for r in rebuilt.rules}, rebuilt.version, rebuilt.next_offset) == (expected, 0, 2)
    await issue_seqs_up_to(stack_settings, 50)
    rebuilt = await rebuild_from_database(client, stack_settings)
    assert ({r.rule_id: r.source for r in rebuilt.rules}, rebuilt.version, rebuilt.next_offset) == (expected, 42, 2)
    stored = await snapshot.load(client, stack_settings)
    assert stored is not None
    assert ({r.rule_id: r.source for r in stored.rules}, stored.version, stored.next_offset) == (expected, 42, 2)


async def test_a_sound_snapshot_is_loaded_not_rebuilt(client: redis.Redis, stack_settings: StackSettings) -> None:
    await insert_rules(stack_settings, "only-in-postgres")
    kept = rule_pb2.Rule(rule_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), severity="HIGH", source="db",
                         name="*", emails=["a@x.io"], enabled=True, version=1)
    await snapshot.write_full(client, stack_settings, Snapshot([kept], version=0, next_offset=0))
    loaded, rebuilt = await load_or_rebuild(client, stack_settings, lambda r: r.source)
    assert (loaded.rules, rebuilt) == (["db"], False)


async def damage_metadata(client: redis.Redis, settings: StackSettings) -> None:
    await client.set(settings.redis_key(snapshot.META_KEY), "not a hash")


async def lose_everything(client: redis.Redis, settings: StackSettings) -> None:
    await client.delete(*snapshot.keys(settings))


async def cover_beyond_the_log(client: redis.Redis, settings: StackSettings) -> None:
    await snapshot.write_full(client, settings, Snapshot([], version=0, next_offset=5))  # the log is empty


@pytest.mark.parametrize("damage", [damage_metadata, lose_everything, cover_beyond_the_log])
async def test_a_snapshot_that_cannot_be_trusted_is_rebuilt_from_postgres(
    client: redis.Redis, stack_settings: StackSettings, damage: Callable[[redis.Redis, StackSettings], Awaitable[None]]
) -> None:
    expected = await insert_rules(stack_settings, "db")
    await snapshot.write_full(client, stack_settings, Snapshot([], version=0, next_offset=0))
    await damage(client, stack_settings)
    loaded, rebuilt = await load_or_rebuild(client, stack_settings, unconverted)
    assert ({r.rule_id: r.source for r in loaded.rules}, rebuilt) == (expected, True)
    again, rebuilt_again = await load_or_rebuild(client, stack_settings, unconverted)
    assert ({r.rule_id: r.source for r in again.rules}, rebuilt_again) == (expected, False)
