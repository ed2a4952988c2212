"""Evaluator start-up (snapshot warm start and rebuilds), following rule changes, and poison
messages, on the real stack."""

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import PolicyViolationError
from pydantic import SecretStr

import alerting.evaluator.follower
import alerting.evaluator.main
from alerting.common import topics
from alerting.common.kafka import kafka_client_options
from alerting.common.redis_client import redis_client
from alerting.evaluator.follower import RuleFollower, RuleOffsetLost
from alerting.evaluator.matcher import RuleIndex
from alerting.producer.alerts import alert_new, build_alert
from alerting.rules import snapshot
from alerting.testsupport.services import read, running, send, send_unparsable, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, events_pb2, rule_pb2


def rule(client_id: str, source: str, rule_id: str | None = None) -> rule_pb2.Rule:
    return rule_pb2.Rule(rule_id=rule_id or str(uuid.uuid4()), client_id=client_id, severity="*", source=source,
                         name="*", emails=["ops@x.io"], enabled=True, version=1)


def grant_of(granted: rule_pb2.Rule) -> rule_pb2.SourceGrant:
    """The grant of the rule's source to its client, without which the rule matches nothing."""
    return rule_pb2.SourceGrant(client_id=granted.client_id, source=granted.source)


async def insert_rule_row(settings: StackSettings, source: str) -> tuple[str, str]:
    """A client, its rule of `source` and the grant of that source to it, as rows."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        client_id = await connection.fetchval("INSERT INTO clients (name) VALUES ('c') RETURNING client_id::text")
        rule_id = await connection.fetchval(
            "INSERT INTO rules (client_id, severity, source, name, emails) VALUES ($1, '*', $2, '*', '{ops@x.io}')"
            " RETURNING rule_id::text", client_id, source)
        await connection.execute("INSERT INTO source_grants (client_id, source, prefix, created_by)"
                                 " VALUES ($1, $2, false, 'test')", client_id, source)
        return client_id, rule_id
    finally:
        await connection.close()


async def publish_upserts(settings: StackSettings, rules: list[rule_pb2.Rule]) -> None:
    """An upsert of each rule on rule.changed, keyed by rule_id as the outbox relay publishes it."""
    changes = [events_pb2.RuleChanged(schema_version=1, seq=seq, op=events_pb2.RuleChanged.OP_UPSERT,
                                      rule_id=r.rule_id, client_id=r.client_id, rule=r)
               for seq, r in enumerate(rules, 1)]
    await send(settings, topics.RULE_CHANGED, [c.SerializeToString() for c in changes],
               keys=[c.rule_id.encode() for c in changes])


async def delete_changes_before(settings: StackSettings, offset: int) -> None:
    """What retention does to a topic that is not compacted: the changes before `offset` are gone."""
    topic = settings.topic(topics.RULE_CHANGED)
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))

    async def deleted() -> bool:
        try:
            await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(offset)})
        except PolicyViolationError:  # the policy below has not reached the partition yet
            return False
        return True

    await admin.start()
    try:
        # The broker deletes records only from topics whose cleanup policy includes "delete".
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": "compact,delete"})]
        )
        await wait_until(deleted, 10, f"records before {offset} deleted")
    finally:
        await admin.close()


async def matched_clients(
    settings: StackSettings, alerts: list[alert_pb2.Alert], expected_messages: int
) -> set[tuple[str, str]]:
    async with running(alerting.evaluator.main.run, settings):
        await send(settings, topics.ALERTS_NEW, [alert_new(a).SerializeToString() for a in alerts])
        records = await read(settings, topics.ALERTS_MATCHED, expected_messages)
    return {(r.key.decode(), events_pb2.AlertMatched.FromString(r.value).alert.source) for r in records}


async def test_warm_start_uses_the_snapshot_not_the_rules_table(stack_settings: StackSettings) -> None:
    client = redis_client(stack_settings)
    only_in_snapshot = rule(str(uuid.uuid4()), "from-snapshot")
    await snapshot.write_full(client, stack_settings, snapshot.Snapshot([only_in_snapshot], version=0, next_offset=0,
                                                                        grants=[grant_of(only_in_snapshot)]))
    await client.aclose()
    await insert_rule_row(stack_settings, "from-table")  # would match if the table were scanned

    alerts = [build_alert("HIGH", "from-snapshot", "x"), build_alert("HIGH", "from-table", "x")]
    assert await matched_clients(stack_settings, alerts, 1) == {(only_in_snapshot.client_id, "from-snapshot")}


async def test_missing_or_unsigned_snapshot_is_read_from_postgres_and_left_to_the_rule_updater(
    stack_settings: StackSettings,
) -> None:
    """The evaluator only reads Redis: it matches from the rules table, and writes nothing back."""
    client_id, _ = await insert_rule_row(stack_settings, "db")
    client = redis_client(stack_settings)
    try:
        assert await client.exists(stack_settings.redis_key(snapshot.SNAPSHOT_KEY)) == 0
        first = await matched_clients(stack_settings, [build_alert("HIGH", "db", "a")], 1)
        assert first == {(client_id, "db")}
        assert await snapshot.load(client, stack_settings) is None

        # A forged snapshot: a rule matching every source, not signed with the snapshot key.
        forged = rule(str(uuid.uuid4()), "*")
        await snapshot.write_full(client, stack_settings.model_copy(update={
            "rule_snapshot_key": SecretStr("not the platform's key")}), snapshot.Snapshot([forged], 0, 0))
        second = await matched_clients(stack_settings, [build_alert("HIGH", "db", "b")], 2)
        assert (client_id, "db") in second and forged.client_id not in {client for client, _ in second}
        with pytest.raises(snapshot.SnapshotCorrupt, match="not signed"):
            await snapshot.load(client, stack_settings)
    finally:
        await client.aclose()


async def test_rule_changes_after_the_snapshot_are_applied_from_its_offset(stack_settings: StackSettings) -> None:
    added = rule(str(uuid.uuid4()), "late")
    client = redis_client(stack_settings)
    await snapshot.write_full(client, stack_settings,
                              snapshot.Snapshot([], version=0, next_offset=0, grants=[grant_of(added)]))
    await client.aclose()
    await publish_upserts(stack_settings, [added])
    assert await matched_clients(stack_settings, [build_alert("LOW", "late", "x")], 1) == {(added.client_id, "late")}


async def test_a_snapshot_whose_offset_left_the_log_is_rebuilt_from_postgres(stack_settings: StackSettings) -> None:
    client_id, _ = await insert_rule_row(stack_settings, "from-table")
    client = redis_client(stack_settings)
    stale = rule(str(uuid.uuid4()), "from-snapshot")
    await snapshot.write_full(client, stack_settings,
                              snapshot.Snapshot([stale], version=0, next_offset=0, grants=[grant_of(stale)]))
    await client.aclose()
    await publish_upserts(stack_settings, [rule(str(uuid.uuid4()), "from-log") for _ in range(3)])
    await delete_changes_before(stack_settings, 2)  # the snapshot's offset, 0, among them

    alerts = [build_alert("HIGH", "from-snapshot", "x"), build_alert("HIGH", "from-table", "x")]
    assert await matched_clients(stack_settings, alerts, 1) == {(client_id, "from-table")}


async def test_the_follower_fails_loudly_when_the_log_no_longer_holds_its_offset(stack_settings: StackSettings) -> None:
    await publish_upserts(stack_settings, [rule(str(uuid.uuid4()), "db") for _ in range(3)])
    await delete_changes_before(stack_settings, 2)
    follower = RuleFollower(stack_settings, RuleIndex(), 0)
    try:
        with pytest.raises(RuleOffsetLost):  # not a silent jump to the end, past changes 0 and 1
            await asyncio.wait_for(follower.start(asyncio.Event()), 30)
    finally:
        await follower.stop()


async def test_the_follower_skips_an_implausible_seq_as_the_rule_updater_does(stack_settings: StackSettings) -> None:
    first, forged, later = (rule(str(uuid.uuid4()), source) for source in ("a", "forged", "c"))
    changes = [events_pb2.RuleChanged(schema_version=1, seq=seq, op=events_pb2.RuleChanged.OP_UPSERT,
                                      rule_id=r.rule_id, client_id=r.client_id, rule=r)
               for seq, r in ((1, first), (10**9, forged), (2, later))]
    await send(stack_settings, topics.RULE_CHANGED, [c.SerializeToString() for c in changes],
               keys=[c.rule_id.encode() for c in changes])
    follower = RuleFollower(stack_settings, RuleIndex(), 0)
    try:
        await asyncio.wait_for(follower.start(asyncio.Event()), 30)
    finally:
        await follower.stop()
    assert {r.rule_id for r in follower.index.rules()} == {first.rule_id, later.rule_id}
    assert (follower.last_seq, follower.next_offset) == (2, 3)


async def test_the_follower_passes_a_change_the_kafka_client_cannot_parse_as_the_rule_updater_does(
    stack_settings: StackSettings
) -> None:
    rules = [rule(str(uuid.uuid4()), source) for source in ("a", "unparsable", "c")]
    changes = [events_pb2.RuleChanged(schema_version=1, seq=seq, op=events_pb2.RuleChanged.OP_UPSERT,
                                      rule_id=r.rule_id, client_id=r.client_id, rule=r)
               for seq, r in enumerate(rules, 1)]
    await send_unparsable(stack_settings, topics.RULE_CHANGED, [c.SerializeToString() for c in changes], {1},
                          keys=[c.rule_id.encode() for c in changes])
    follower = RuleFollower(stack_settings, RuleIndex(), 0)
    try:
        await asyncio.wait_for(follower.start(asyncio.Event()), 30)
    finally:
        await follower.stop()
    assert {r.rule_id for r in follower.index.rules()} == {rules[0].rule_id, rules[2].rule_id}
    assert (follower.last_seq, follower.next_offset) == (3, 3)


async def test_the_follower_retries_a_failure_from_the_first_change_it_did_not_apply(
    stack_settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [rule(str(uuid.uuid4()), source) for source in ("a", "b", "c")]
    real_apply_change = alerting.evaluator.follower.apply_change
    failed: list[str] = []

    def apply_failing_once_at_the_second_rule(index: RuleIndex, change: events_pb2.RuleChanged) -> None:
        if change.rule_id == rules[1].rule_id and not failed:
            failed.append(change.rule_id)
            raise ConnectionError("a transient failure")
        real_apply_change(index, change)

    monkeypatch.setattr(alerting.evaluator.follower, "apply_change", apply_failing_once_at_the_second_rule)
    follower = RuleFollower(stack_settings, RuleIndex(), 0)
    stop = asyncio.Event()
    await follower.start(stop)
    following = asyncio.create_task(follower.follow(stop))
    try:
        await publish_upserts(stack_settings, rules)

        async def all_applied() -> bool:
            return len(follower.index) == len(rules)

        await wait_until(all_applied, 30, "every rule in the index")
    finally:
        stop.set()
        await following
        await follower.stop()
    assert failed and not follower.failing
    assert follower.next_offset == len(rules)


async def test_poison_alerts_are_dead_lettered_and_the_evaluator_keeps_going(stack_settings: StackSettings) -> None:
    client_id, _ = await insert_rule_row(stack_settings, "db")
    no_severity = alert_new(build_alert("HIGH", "db", "x"))
    no_severity.alert.severity = alert_pb2.SEVERITY_UNSPECIFIED  # 0
    good = build_alert("HIGH", "db", "after-poison")
    async with running(alerting.evaluator.main.run, stack_settings):
        await send(stack_settings, topics.ALERTS_NEW,
                   [b"\x00garbage", no_severity.SerializeToString(), alert_new(good).SerializeToString()])
        matched = await read(stack_settings, topics.ALERTS_MATCHED, 1)
        dead = await read(stack_settings, topics.dead_letter(topics.ALERTS_NEW), 2)
    assert events_pb2.AlertMatched.FromString(matched[0].value).alert.name == "after-poison"
    reasons = sorted(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons[0].startswith("alert.severity: unknown value 0")
    assert reasons[1].startswith("undecodable AlertNew")
    assert dead[0].value in (b"\x00garbage", no_severity.SerializeToString())
