"""`rule.changed` really compacted by the broker (segments rolled, superseded changes
removed), and an evaluator warmed from a snapshot whose offset lies inside the compacted
range: it reads on across the gaps and ends with every rule's newest version."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import alerting.evaluator.main
from alerting.common import topics
from alerting.common.kafka import OutgoingMessage, kafka_client_options, make_producer, publish_all
from alerting.common.redis_client import redis_client
from alerting.producer.alerts import alert_new, build_alert
from alerting.rules import snapshot
from alerting.rules.changelog import DELETE, UPSERT, rule_changed_partition
from alerting.testsupport.services import read, running, send, wait_until
from alerting.testsupport.stack import TEST_PARTITIONS, StackSettings
from alerting.v1 import events_pb2, rule_pb2

RULES = 10
# Rounds of changes of all rules: upserts of versions 1, 2, ..., and in the last round the
# last rule is deleted (an ordinary message, not a tombstone, which compaction keeps).
VERSIONS = 30
DELETED = RULES - 1
FILLERS = 3  # changes of one more rule after the last round, so that its segment rolls too
ROLL_SECONDS = 0.25  # between appends: more than segment.ms, so each append starts a new segment
COMPACTION_TIMEOUT = 90
# The log cleaner made quick on this test's own topic. AlterConfigs replaces a topic's whole
# config, so the compact policy is given again.
FAST_CLEANING = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "segment.bytes": "16384",  # above any batch published here: the broker refuses a batch larger than a segment
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "100",
}
# The snapshot covers the log up to here: the middle of round 15, changes of rules 0-4 at
# version 15 and of rules 5-9 at version 14 before it.
SNAPSHOT_OFFSET = 14 * RULES + RULES // 2


def upsert(seq: int, rule_id: str, client_id: str, source: str, version: int) -> events_pb2.RuleChanged:
    """A change as the outbox relay publishes it (seq, a valid rule), for rule `rule_id`."""
    rule = rule_pb2.Rule(rule_id=rule_id, client_id=client_id, severity="*", source=source, name="*",
                         emails=[f"{source.partition('-')[0]}@x.io"], enabled=True, version=version)
    return events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq, op=UPSERT, rule_id=rule_id,
                                  client_id=client_id, rule=rule)


def delete(seq: int, rule_id: str, client_id: str) -> events_pb2.RuleChanged:
    return events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq, op=DELETE, rule_id=rule_id,
                                  client_id=client_id)


def source_of(rule: int, version: int) -> str:
    return f"r{rule}-v{version}"


async def topic_configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [(error_code, error_message, _, _, entries)] = response.resources
    assert error_code == 0, f"describing {topic}: {error_message}"
    return {entry[0]: entry[1] for entry in entries}


async def clean_quickly(settings: StackSettings) -> None:
    """FAST_CLEANING on this test's `rule.changed`, waiting until the broker reports it."""
    topic = settings.topic(topics.RULE_CHANGED)
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        [response] = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, FAST_CLEANING)])
        assert [(code, message) for code, message, *_ in response.resources] == [(0, None)], response

        async def applied() -> bool:
            configs = await topic_configs(admin, topic)
            return {name: configs.get(name) for name in FAST_CLEANING} == FAST_CLEANING

        await wait_until(applied, 30, f"the broker to apply {FAST_CLEANING} to {topic}")
    finally:
        await admin.close()


async def publish_rounds(settings: StackSettings, rounds: list[list[events_pb2.RuleChanged]]) -> None:
    """Each round in one batch, keyed by rule_id, a pause after each so the next one starts a new segment."""
    producer = make_producer(settings)
    await producer.start()
    topic = settings.topic(topics.RULE_CHANGED)
    try:
        for changes in rounds:
            await publish_all(producer, [OutgoingMessage(topic, c.SerializeToString(), key=c.rule_id.encode())
                                         for c in changes])
            await asyncio.sleep(ROLL_SECONDS)
    finally:
        await producer.stop()


async def log_contents(settings: StackSettings) -> tuple[int, int, list[ConsumerRecord]]:
    """(beginning offset, end offset, every record) of `rule.changed`, read from offset 0 by a
    fresh consumer outside any group."""
    partition = rule_changed_partition(settings)
    consumer = AIOKafkaConsumer(**kafka_client_options(settings), enable_auto_commit=False,
                                auto_offset_reset="none")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign([partition])
        beginning = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, 0)
        async with asyncio.timeout(30):
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                records += batch.get(partition, [])
    finally:
        await consumer.stop()
    return beginning, end, records


async def alerts_all_handled(settings: StackSettings) -> bool:
    """Whether the evaluator's group has committed every alert of `alerts.new`: it publishes
    an alert's matches before it commits the alert."""
    topic = settings.topic(topics.ALERTS_NEW)
    consumer = AIOKafkaConsumer(**kafka_client_options(settings))
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, n) for n in range(TEST_PARTITIONS[topics.ALERTS_NEW])])
        committed = await admin.list_consumer_group_offsets(settings.topic(topics.EVALUATOR_GROUP))
    finally:
        await admin.close()
        await consumer.stop()
    return all(end == 0 or (tp in committed and committed[tp].offset == end) for tp, end in ends.items())


async def test_an_evaluator_warmed_inside_the_compacted_range_ends_with_every_rules_newest_version(
    stack_settings: StackSettings,
) -> None:
    settings = stack_settings
    await clean_quickly(settings)
    rule_ids = [str(uuid.uuid4()) for _ in range(RULES)]
    client_ids = [str(uuid.uuid4()) for _ in range(RULES)]
    filler_id, filler_client = str(uuid.uuid4()), str(uuid.uuid4())
    published: list[events_pb2.RuleChanged] = []  # in offset order: published[offset].seq == offset + 1
    rounds: list[list[events_pb2.RuleChanged]] = []
    for version in range(1, VERSIONS + 1):
        rounds.append([
            delete(len(published) + n + 1, rule_ids[n], client_ids[n]) if (n, version) == (DELETED, VERSIONS)
            else upsert(len(published) + n + 1, rule_ids[n], client_ids[n], source_of(n, version), version)
            for n in range(RULES)
        ])
        published += rounds[-1]
    for version in range(1, FILLERS + 1):
        rounds.append([upsert(len(published) + 1, filler_id, filler_client, f"filler-v{version}", version)])
        published += rounds[-1]
    await publish_rounds(settings, rounds)

    # Compaction, proven: the end offset unchanged, fewer records, every superseded change of
    # the ten rules gone (offset gaps), every surviving record the one published at its offset.
    final_offsets = {len(published) - FILLERS - RULES + n for n in range(RULES)}
    deadline = asyncio.get_running_loop().time() + COMPACTION_TIMEOUT
    while True:
        beginning, end, records = await log_contents(settings)
        assert end == len(published), f"the log's end moved: {end}, {len(published)} changes published"
        for record in records:
            assert (record.key, record.value) == (published[record.offset].rule_id.encode(),
                                                  published[record.offset].SerializeToString())
        if {record.offset for record in records if record.key != filler_id.encode()} == final_offsets:
            break
        assert asyncio.get_running_loop().time() < deadline, (
            f"the broker did not compact rule.changed within {COMPACTION_TIMEOUT} s: {len(records)} records of"
            f" {len(published)} published remain, offsets {beginning}-{end}")
        await asyncio.sleep(1)
    beginning, end, records = await log_contents(settings)
    survivors = {record.offset for record in records}
    assert (beginning, end) == (0, len(published))
    assert final_offsets < survivors and survivors - final_offsets <= set(range(end - FILLERS, end))
    assert end - 1 in survivors and len(records) < len(published)
    assert SNAPSHOT_OFFSET not in survivors and beginning <= SNAPSHOT_OFFSET < end

    # A snapshot of exactly the changes before SNAPSHOT_OFFSET, an offset compaction removed.
    covered: dict[str, rule_pb2.Rule] = {}
    for change in published[:SNAPSHOT_OFFSET]:
        covered[change.rule_id] = change.rule
    assert sorted(rule.version for rule in covered.values()) == [14] * (RULES // 2) + [15] * (RULES // 2)
    # Each client is granted its rule's sources by their prefix, r<n>-.
    grants = [rule_pb2.SourceGrant(client_id=client_ids[n], source=f"r{n}-", prefix=True) for n in range(RULES)]
    written = snapshot.Snapshot(list(covered.values()), published[SNAPSHOT_OFFSET - 1].seq, SNAPSHOT_OFFSET, grants)
    client = redis_client(settings)
    try:
        await snapshot.write_full(client, settings, written)

        # Alerts for each rule's newest source (the deleted rule's last), its source in the snapshot,
        # and one that compaction removed.
        newest = {n: VERSIONS - 1 if n == DELETED else VERSIONS for n in range(RULES)}
        alerts = [build_alert("HIGH", source_of(n, version), "x")
                  for n in range(RULES) for version in (newest[n], covered[rule_ids[n]].version, 20)]
        async with running(alerting.evaluator.main.run, settings):
            await send(settings, topics.ALERTS_NEW, [alert_new(alert).SerializeToString() for alert in alerts])
            await wait_until(lambda: alerts_all_handled(settings), 30, "the evaluator to handle every alert")
            matched = await read(settings, topics.ALERTS_MATCHED, RULES - 1)
        after = await snapshot.load(client, settings)
    finally:
        await client.aclose()

    # Exactly one match per remaining rule, for its newest source; none for the deleted rule.
    events = [events_pb2.AlertMatched.FromString(record.value) for record in matched]
    assert sorted((record.key.decode(), e.client_id, e.alert.source, list(e.rule_ids), list(e.emails))
                  for record, e in zip(matched, events, strict=True)) == [
        (client_ids[n], client_ids[n], source_of(n, VERSIONS), [rule_ids[n]], [f"r{n}@x.io"])
        for n in sorted(range(RULES), key=lambda n: client_ids[n]) if n != DELETED]
    # The evaluator warmed from this snapshot (the rules table is empty: a rebuild would match nothing).
    assert after is not None
    assert (after.version, after.next_offset, sorted(r.SerializeToString() for r in after.rules)) == (
        written.version, written.next_offset, sorted(r.SerializeToString() for r in written.rules))
