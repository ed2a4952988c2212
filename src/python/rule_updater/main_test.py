"""The rule-updater keeps the Redis snapshot current, change by change."""

import uuid

import redis.asyncio as redis

import rule_updater.main
from alerting.v1 import events_pb2, rule_pb2
from common import topics
from rule_updater import snapshot
from testsupport.services import read, running, send, wait_until


def change(seq: int, op: int, rule_id: str, source: str = "db") -> bytes:
    event = events_pb2.RuleChanged(schema_version=1, seq=seq, op=op, rule_id=rule_id, client_id=str(uuid.uuid4()))
    if op == events_pb2.RuleChanged.OP_UPSERT:
        event.rule.CopyFrom(rule_pb2.Rule(rule_id=rule_id, client_id=event.client_id, severity="*", source=source,
                                          name="*", emails=["a@x.io"], enabled=True, version=seq))
    return event.SerializeToString()


UPSERT, DELETE = events_pb2.RuleChanged.OP_UPSERT, events_pb2.RuleChanged.OP_DELETE


async def test_changes_are_applied_incrementally_and_duplicates_ignored(stack_settings):
    client = redis.from_url(stack_settings.redis_url)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    async def version_is(expected: int) -> bool:
        return int(await client.get(stack_settings.redis_key(snapshot.VERSION_KEY)) or -1) == expected

    try:
        async with running(rule_updater.main.run, stack_settings):
            # Built from the (empty) rules table at start: version 0, nothing covered.
            await wait_until(lambda: version_is(0), 30, "the initial snapshot")
            await send(stack_settings, topics.RULE_CHANGED,
                       [change(1, UPSERT, first), change(2, UPSERT, second), change(3, UPSERT, first, "web")])
            await wait_until(lambda: version_is(3), 30, "version 3")
            # A redelivered older change and a delete.
            stale_then_delete = [change(2, UPSERT, second, "stale"), change(4, DELETE, second)]
            await send(stack_settings, topics.RULE_CHANGED, stale_then_delete)
            await wait_until(lambda: version_is(4), 30, "version 4")
        loaded = await snapshot.load(client, stack_settings)
    finally:
        await client.aclose()
    assert [(rule.rule_id, rule.source) for rule in loaded.rules] == [(first, "web")]
    assert (loaded.version, loaded.next_offset) == (4, 5)


async def test_invalid_changes_are_dead_lettered(stack_settings):
    async with running(rule_updater.main.run, stack_settings):
        await send(stack_settings, topics.RULE_CHANGED, [change(1, 0, str(uuid.uuid4()))])
        [dead] = await read(stack_settings, topics.dead_letter(topics.RULE_CHANGED), 1)
    assert dict(dead.headers)["dlq.reason"] == b"op: unknown 0"
