"""The rule-updater keeps the Redis snapshot current, change by change, and rebuilds it
rather than patch it when Redis lost it or went back to an older state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

import alerting.rule_updater.main
from alerting.common import topics
from alerting.common.redis_client import redis_client
from alerting.rules import snapshot
from alerting.testsupport import stack
from alerting.testsupport.services import read, rule_service_stub, running, send, send_unparsable, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2, rule_pb2, rule_service_pb2, rule_service_pb2_grpc

UPSERT, DELETE = events_pb2.RuleChanged.OP_UPSERT, events_pb2.RuleChanged.OP_DELETE
UNKNOWN_OP = events_pb2.RuleChanged.OP_UNSPECIFIED  # 0: no valid change has it


def change(
    seq: int, op: events_pb2.RuleChanged.Op.ValueType, rule_id: str, source: str = "db"
) -> events_pb2.RuleChanged:
    event = events_pb2.RuleChanged(schema_version=1, seq=seq, op=op, rule_id=rule_id, client_id=str(uuid.uuid4()))
    if op == events_pb2.RuleChanged.OP_UPSERT:
        event.rule.CopyFrom(rule_pb2.Rule(rule_id=rule_id, client_id=event.client_id, severity="*", source=source,
                                          name="*", emails=["a@x.io"], enabled=True, version=seq))
    return event


async def publish_changes(settings: StackSettings, changes: list[events_pb2.RuleChanged]) -> None:
    """As the outbox relay publishes them: keyed by rule_id."""
    await send(settings, topics.RULE_CHANGED, [c.SerializeToString() for c in changes],
               keys=[c.rule_id.encode() for c in changes])


async def version_is(client: redis.Redis, settings: StackSettings, expected: int) -> bool:
    return int(await client.get(settings.redis_key(snapshot.VERSION_KEY)) or -1) == expected


async def rules_are(client: redis.Redis, settings: StackSettings, *expected: str) -> bool:
    """Whether the snapshot holds exactly these rules (not while it is missing or being rewritten)."""
    try:
        loaded = await snapshot.load(client, settings)
    except snapshot.SnapshotCorrupt:
        return False
    return loaded is not None and {rule.rule_id for rule in loaded.rules} == set(expected)


async def create_rule(stub: rule_service_pb2_grpc.RuleServiceAsyncStub, client_id: str, source: str) -> str:
    request = rule_service_pb2.CreateRuleRequest(client_id=client_id, severity="*", source=source, name="*",
                                                 emails=["ops@x.io"])
    return (await stub.CreateRule(request)).rule_id


async def test_changes_are_applied_incrementally_and_duplicates_ignored(stack_settings: StackSettings) -> None:
    client = redis_client(stack_settings)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with running(alerting.rule_updater.main.run, stack_settings):
            # Built from the (empty) rules table at start: version 0, nothing covered.
            await wait_until(lambda: version_is(client, stack_settings, 0), 30, "the initial snapshot")
            await publish_changes(
                stack_settings, [change(1, UPSERT, first), change(2, UPSERT, second), change(3, UPSERT, first, "web")]
            )
            await wait_until(lambda: version_is(client, stack_settings, 3), 30, "version 3")
            # A redelivered older change and a delete.
            stale_then_delete = [change(2, UPSERT, second, "stale"), change(4, DELETE, second)]
            await publish_changes(stack_settings, stale_then_delete)
            await wait_until(lambda: version_is(client, stack_settings, 4), 30, "version 4")
        loaded = await snapshot.load(client, stack_settings)
    finally:
        await client.aclose()
    assert loaded is not None
    assert [(rule.rule_id, rule.source) for rule in loaded.rules] == [(first, "web")]
    assert (loaded.version, loaded.next_offset) == (4, 5)


async def test_invalid_changes_are_dead_lettered(stack_settings: StackSettings) -> None:
    async with running(alerting.rule_updater.main.run, stack_settings):
        await publish_changes(stack_settings, [change(1, UNKNOWN_OP, str(uuid.uuid4()))])
        [dead] = await read(stack_settings, topics.dead_letter(topics.RULE_CHANGED), 1)
    assert dict(dead.headers)["dlq.reason"] == b"op: unknown 0"


async def test_a_change_the_kafka_client_cannot_parse_is_dead_lettered_and_the_others_applied(
    stack_settings: StackSettings
) -> None:
    client = redis_client(stack_settings)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    changes = [change(seq, UPSERT, rule_id) for seq, rule_id in enumerate(ids, 1)]
    try:
        async with running(alerting.rule_updater.main.run, stack_settings):
            await wait_until(lambda: version_is(client, stack_settings, 0), 30, "the initial snapshot")
            await send_unparsable(stack_settings, topics.RULE_CHANGED, [c.SerializeToString() for c in changes],
                                  {1}, keys=[c.rule_id.encode() for c in changes])
            [dead] = await read(stack_settings, topics.dead_letter(topics.RULE_CHANGED), 1)
            await wait_until(lambda: version_is(client, stack_settings, 3), 30, "version 3")
        assert await rules_are(client, stack_settings, ids[0], ids[2])
    finally:
        await client.aclose()
    assert dict(dead.headers)["dlq.source"] == f"{stack_settings.topic(topics.RULE_CHANGED)}/0/1".encode()
    assert dict(dead.headers)["dlq.reason"].startswith(b"the Kafka client cannot parse it: UnicodeDecodeError")


async def test_a_change_with_an_implausible_seq_is_dead_lettered_and_freezes_nothing(
    stack_settings: StackSettings,
) -> None:
    client = redis_client(stack_settings)
    first, forged, later = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with running(alerting.rule_updater.main.run, stack_settings):
            await wait_until(lambda: version_is(client, stack_settings, 0), 30, "the initial snapshot")
            await publish_changes(stack_settings, [change(1, UPSERT, first), change(10**9, UPSERT, forged)])
            [dead] = await read(stack_settings, topics.dead_letter(topics.RULE_CHANGED), 1)
            await publish_changes(stack_settings, [change(2, UPSERT, later)])
            await wait_until(lambda: version_is(client, stack_settings, 2), 30, "version 2")
        assert await rules_are(client, stack_settings, first, later)
    finally:
        await client.aclose()
    assert dict(dead.headers)["dlq.reason"] == (
        b"seq: 1000000000 is implausibly far ahead of the newest change applied (1)")


async def test_changes_after_a_dead_letter_are_applied_not_taken_for_a_gap(stack_settings: StackSettings) -> None:
    """A dead-lettered change never reaches the snapshot, yet the snapshot covers its offset.
    (A rebuild would lose these rules: they are in the log only, not in Postgres.)"""
    client = redis_client(stack_settings)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with running(alerting.rule_updater.main.run, stack_settings):
            await wait_until(lambda: version_is(client, stack_settings, 0), 30, "the initial snapshot")
            await publish_changes(stack_settings, [change(1, UPSERT, first)])
            await wait_until(lambda: version_is(client, stack_settings, 1), 30, "version 1")
            await publish_changes(stack_settings, [change(2, UNKNOWN_OP, str(uuid.uuid4()))])
            await read(stack_settings, topics.dead_letter(topics.RULE_CHANGED), 1)  # dead-lettered on its own
            await publish_changes(stack_settings, [change(3, UPSERT, second)])
            await wait_until(lambda: version_is(client, stack_settings, 3), 30, "version 3")
        assert await rules_are(client, stack_settings, first, second)
    finally:
        await client.aclose()


async def lose_the_snapshot(client: redis.Redis, settings: StackSettings, rule_id: str) -> None:
    await client.delete(*snapshot.keys(settings))  # as FLUSHALL would


async def lose_a_rule(client: redis.Redis, settings: StackSettings, rule_id: str) -> None:
    assert await client.hdel(settings.redis_key(snapshot.SNAPSHOT_KEY), snapshot.chunk_of(rule_id)) == 1


@pytest.mark.parametrize("damage", [lose_the_snapshot, lose_a_rule])
async def test_a_snapshot_damaged_while_running_is_rebuilt_with_every_rule(
    stack_settings: StackSettings, damage: Callable[[redis.Redis, StackSettings, str], Awaitable[None]]
) -> None:
    client = redis_client(stack_settings)
    try:
        async with rule_service_stub(stack_settings) as stub, running(alerting.rule_updater.main.run, stack_settings):
            tenant = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name="acme"))
            first = await create_rule(stub, tenant.client_id, "db")
            await wait_until(lambda: rules_are(client, stack_settings, first), 30, "the first rule")
            await damage(client, stack_settings, first)
            second = await create_rule(stub, tenant.client_id, "web")
            await wait_until(lambda: rules_are(client, stack_settings, first, second), 30, "both rules")
    finally:
        await client.aclose()


async def test_a_snapshot_gone_back_to_an_older_state_is_rebuilt_with_every_rule(stack_settings: StackSettings) -> None:
    client = redis_client(stack_settings)
    try:
        async with rule_service_stub(stack_settings) as stub, running(alerting.rule_updater.main.run, stack_settings):
            tenant = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name="acme"))
            first = await create_rule(stub, tenant.client_id, "db")
            await wait_until(lambda: rules_are(client, stack_settings, first), 30, "the first rule")
            older = await snapshot.load(client, stack_settings)
            assert older is not None
            second = await create_rule(stub, tenant.client_id, "web")
            await wait_until(lambda: rules_are(client, stack_settings, first, second), 30, "two rules")
            # As if Redis restarted from an append-only file that missed the latest writes.
            await snapshot.write_full(client, stack_settings, older)
            third = await create_rule(stub, tenant.client_id, "api")
            await wait_until(lambda: rules_are(client, stack_settings, first, second, third), 30, "all three rules")
    finally:
        await client.aclose()


async def test_a_snapshot_key_of_another_type_is_rebuilt_not_retried_forever(stack_settings: StackSettings) -> None:
    client = redis_client(stack_settings)
    try:
        await client.set(stack_settings.redis_key(snapshot.META_KEY), "not a hash")
        async with running(alerting.rule_updater.main.run, stack_settings):
            await wait_until(lambda: version_is(client, stack_settings, 0), 30, "the rebuilt snapshot")
        assert await rules_are(client, stack_settings)
    finally:
        await client.aclose()


async def test_a_rule_updater_started_while_postgres_is_unreachable_waits_for_it(
    stack_settings: StackSettings, base_settings: StackSettings, template_database: str
) -> None:
    """The snapshot must be built from a database that does not exist yet: every connection
    fails, as during an outage, until the database is created."""
    database = stack.unique_name("late")
    settings = stack_settings.model_copy(
        update={"database_url": stack.with_database(base_settings.database_url, database)}
    )
    client = redis_client(settings)
    try:
        async with running(alerting.rule_updater.main.run, settings):
            await asyncio.sleep(1.5)  # several failed attempts
            assert not await version_is(client, settings, 0)
            await stack.create_database(base_settings.database_url, database, template=template_database)
            await wait_until(lambda: version_is(client, settings, 0), 30, "the snapshot built after the outage")
    finally:
        await client.aclose()
        await stack.drop_database(base_settings.database_url, database)
