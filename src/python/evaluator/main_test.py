"""Evaluator start-up (snapshot warm start and rebuilds) and poison messages, on the real stack."""

import uuid

import asyncpg
import redis.asyncio as redis

import evaluator.main
from alerting.v1 import events_pb2, rule_pb2
from common import topics
from producer.alerts import alert_new, build_alert
from rule_updater import snapshot
from testsupport.services import read, running, send


def rule(client_id: str, source: str, rule_id: str | None = None) -> rule_pb2.Rule:
    return rule_pb2.Rule(rule_id=rule_id or str(uuid.uuid4()), client_id=client_id, severity="*", source=source,
                         name="*", emails=["ops@x.io"], enabled=True, version=1)


async def insert_rule_row(settings, source: str) -> tuple[str, str]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('c') RETURNING client_id::text")
        rule_id = await connection.fetchval(
            "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, '*', $2, '*', '{ops@x.io}')"
            " RETURNING rule_id::text", client_id, source)
        return client_id, rule_id
    finally:
        await connection.close()


async def matched_clients(settings, alerts, expected_messages: int) -> set[tuple[str, str]]:
    async with running(evaluator.main.run, settings):
        await send(settings, topics.ALERTS_NEW, [alert_new(a).SerializeToString() for a in alerts])
        records = await read(settings, topics.ALERTS_MATCHED, expected_messages)
    return {(r.key.decode(), events_pb2.AlertMatched.FromString(r.value).alert.source) for r in records}


async def test_warm_start_uses_the_snapshot_not_the_rules_table(stack_settings):
    client = redis.from_url(stack_settings.redis_url)
    only_in_snapshot = rule(str(uuid.uuid4()), "from-snapshot")
    await snapshot.write_full(client, stack_settings, snapshot.Snapshot([only_in_snapshot], version=0, next_offset=0))
    await client.aclose()
    await insert_rule_row(stack_settings, "from-table")  # would match if the table were scanned

    alerts = [build_alert("HIGH", "from-snapshot", "x"), build_alert("HIGH", "from-table", "x")]
    assert await matched_clients(stack_settings, alerts, 1) == {(only_in_snapshot.client_id, "from-snapshot")}


async def test_missing_or_garbage_snapshot_is_rebuilt_from_postgres(stack_settings):
    client_id, _ = await insert_rule_row(stack_settings, "db")
    client = redis.from_url(stack_settings.redis_url)
    try:
        assert await client.exists(stack_settings.redis_key(snapshot.SNAPSHOT_KEY)) == 0
        first = await matched_clients(stack_settings, [build_alert("HIGH", "db", "a")], 1)
        assert first == {(client_id, "db")}
        rebuilt = await snapshot.load(client, stack_settings)
        assert [r.source for r in rebuilt.rules] == ["db"]

        await client.hset(stack_settings.redis_key(snapshot.SNAPSHOT_KEY), "garbage", b"\xff\x00not a rule")
        second = await matched_clients(stack_settings, [build_alert("HIGH", "db", "b")], 2)
        assert (client_id, "db") in second
        assert len((await snapshot.load(client, stack_settings)).rules) == 1
    finally:
        await client.aclose()


async def test_rule_changes_after_the_snapshot_are_applied_from_its_offset(stack_settings):
    client = redis.from_url(stack_settings.redis_url)
    await snapshot.write_full(client, stack_settings, snapshot.Snapshot([], version=0, next_offset=0))
    await client.aclose()
    added = rule(str(uuid.uuid4()), "late")
    change = events_pb2.RuleChanged(schema_version=1, seq=1, op=events_pb2.RuleChanged.OP_UPSERT,
                                    rule_id=added.rule_id, client_id=added.client_id, rule=added)
    await send(stack_settings, topics.RULE_CHANGED, [change.SerializeToString()])
    assert await matched_clients(stack_settings, [build_alert("LOW", "late", "x")], 1) == {(added.client_id, "late")}


async def test_poison_alerts_are_dead_lettered_and_the_evaluator_keeps_going(stack_settings):
    client_id, _ = await insert_rule_row(stack_settings, "db")
    no_severity = alert_new(build_alert("HIGH", "db", "x"))
    no_severity.alert.severity = 0
    good = build_alert("HIGH", "db", "after-poison")
    async with running(evaluator.main.run, stack_settings):
        await send(stack_settings, topics.ALERTS_NEW,
                   [b"\x00garbage", no_severity.SerializeToString(), alert_new(good).SerializeToString()])
        matched = await read(stack_settings, topics.ALERTS_MATCHED, 1)
        dead = await read(stack_settings, topics.dead_letter(topics.ALERTS_NEW), 2)
    assert events_pb2.AlertMatched.FromString(matched[0].value).alert.name == "after-poison"
    reasons = sorted(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons[0].startswith("alert.severity: unknown value 0")
    assert reasons[1].startswith("undecodable AlertNew")
    assert dead[0].value in (b"\x00garbage", no_severity.SerializeToString())
