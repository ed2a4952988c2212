"""`rule.changed`, the ordered log of every committed change of a rule or of a source grant:
validating its records, their keys, and reading it outside any consumer group from an
exact offset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from alerting.common import topics
from alerting.common.kafka import MAX_PARTITION_FETCH_BYTES, InvalidEvent, decode, kafka_client_options, start_clients
from alerting.common.settings import KafkaSettings
from alerting.common.validation import InvalidField, require_canonical_uuid
from alerting.rules.validation import check_grant, check_rule
from alerting.v1 import events_pb2, rule_pb2

UPSERT = events_pb2.RuleChanged.OP_UPSERT
DELETE = events_pb2.RuleChanged.OP_DELETE
GRANT = events_pb2.RuleChanged.OP_GRANT
REVOKE = events_pb2.RuleChanged.OP_REVOKE
GRANT_OPS = (GRANT, REVOKE)
# How far a change's seq may run ahead of the newest seq applied before it. Outbox seqs
# grow by one per change (gaps come only from rolled-back transactions): a change far
# ahead was not written by the rule-service, and applying it would make every later,
# genuine change look old, freezing the snapshot.
MAX_SEQ_JUMP = 1_000_000


def applies(seq: int, last_seq: int) -> bool:
    """Whether a valid change with `seq` changes the rules, after changes up to `last_seq`
    (the newest seq applied) were applied: the one rule by which the rule-updater's snapshot
    and every evaluator's index compute their rules and grants from the log, so that having
    read the same offsets they hold the same ones, whatever seqs the log holds. A change
    applies when its seq is above `last_seq` (a repeat or an older change changes nothing),
    and then replaces or deletes its rule, or gives or revokes its grant, whole. InvalidField
    when `seq` is implausibly far ahead."""
    if seq > last_seq + MAX_SEQ_JUMP:
        raise InvalidField("seq", f"{seq} is implausibly far ahead of the newest change applied ({last_seq})")
    return seq > last_seq


def grant_key(grant: rule_pb2.SourceGrant) -> str:
    """What names a grant: its changes' key on `rule.changed` (compaction keeps the newest
    change of each) and its field in the snapshot. A rule's key is its rule_id, a UUID, so
    the two never meet."""
    return f"grant:{grant.client_id}:{'prefix' if grant.prefix else 'exact'}:{grant.source}"


def change_key(change: events_pb2.RuleChanged) -> str:
    return grant_key(change.grant) if change.op in GRANT_OPS else change.rule_id


def decode_rule_changed(record: ConsumerRecord) -> events_pb2.RuleChanged:
    """A change the rule-service could have made, or InvalidEvent: a rule or a grant the API
    would never have accepted must not reach an index or the snapshot."""
    change = decode(record, events_pb2.RuleChanged)
    if change.seq <= 0:
        raise InvalidEvent("seq: must be positive")
    try:
        if change.op in GRANT_OPS:
            _check_grant_change(change)
            return change
        require_canonical_uuid(change.rule_id, "rule_id")
        if change.HasField("grant"):
            raise InvalidField("grant", "a rule's change carries no grant")
        if change.op == UPSERT:
            if change.rule.rule_id != change.rule_id:
                raise InvalidField("rule", "missing or not the rule named by rule_id")
            check_rule(change.rule)
        elif change.op != DELETE:
            raise InvalidField("op", f"unknown {change.op}")
    except InvalidField as error:
        raise InvalidEvent(str(error)) from error
    return change


def _check_grant_change(change: events_pb2.RuleChanged) -> None:
    if not change.HasField("grant"):
        raise InvalidField("grant", "missing")
    check_grant(change.grant)
    if change.client_id != change.grant.client_id:
        raise InvalidField("client_id", "not the client of the grant")
    if change.rule_id or change.HasField("rule"):
        raise InvalidField("rule_id", "a grant's change names no rule")


def rule_changed_partition(settings: KafkaSettings) -> TopicPartition:
    """The one partition of `rule.changed`: it orders all changes."""
    return TopicPartition(settings.topic(topics.RULE_CHANGED), 0)


def rule_changed_consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    """A reader of `rule.changed` outside any consumer group. Reading from an offset the log
    no longer (or does not yet) hold raises OffsetOutOfRangeError, where the default policy
    would silently jump to the log's end and skip changes."""
    return AIOKafkaConsumer(
        **kafka_client_options(settings), enable_auto_commit=False, auto_offset_reset="none",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
    )


@asynccontextmanager
async def reading_rule_changed(
    settings: KafkaSettings, stop: asyncio.Event | None = None
) -> AsyncIterator[tuple[AIOKafkaConsumer, TopicPartition]]:
    """A started reader assigned to the partition of `rule.changed`, stopped on exit."""
    partition = rule_changed_partition(settings)
    consumer = rule_changed_consumer(settings)
    try:
        await start_clients(settings, consumer, stop=stop)
        consumer.assign([partition])
        yield consumer, partition
    finally:
        await consumer.stop()


async def rule_changed_position(settings: KafkaSettings, *, stop: asyncio.Event | None = None) -> tuple[int, int]:
    """(end offset of `rule.changed`, seq of the change just before it, or 0)."""
    async with reading_rule_changed(settings, stop) as (consumer, partition):
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return 0, 0
        consumer.seek(partition, end - 1)
        batch = await consumer.getmany(partition, timeout_ms=10_000, max_records=1)
        records = batch.get(partition, [])
        if not records:
            raise RuntimeError("could not read the last rule change")
        return end, events_pb2.RuleChanged.FromString(records[0].value or b"").seq


async def rule_changed_holds(settings: KafkaSettings, offset: int, *, stop: asyncio.Event | None = None) -> bool:
    """Whether `rule.changed` can be read on from `offset`: not deleted, and not beyond its end."""
    async with reading_rule_changed(settings, stop) as (consumer, partition):
        beginning = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
    return beginning <= offset <= end
