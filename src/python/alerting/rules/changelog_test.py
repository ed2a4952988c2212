"""Validating `rule.changed` records (whatever a record holds: a change an index can take,
or a reason), and reading the log's position on the real broker."""

import re
import uuid

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given

from alerting.common import topics
from alerting.common.kafka import InvalidEvent
from alerting.common.validation import InvalidField
from alerting.evaluator.alerts import indexed_grant, indexed_rule
from alerting.evaluator.matcher import RuleIndex
from alerting.rules.changelog import (
    DELETE,
    GRANT,
    GRANT_OPS,
    REVOKE,
    UPSERT,
    applies,
    change_key,
    decode_rule_changed,
    rule_changed_holds,
    rule_changed_position,
)
from alerting.testsupport.services import send
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.strategies import any_rule_changed, int64s, records, values_of
from alerting.v1 import events_pb2, rule_pb2


def record(value: bytes, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic=topics.RULE_CHANGED, partition=0, offset=offset, timestamp=0, timestamp_type=0,
                          key=b"k", value=value, checksum=None, serialized_key_size=1,
                          serialized_value_size=len(value), headers=[])


def change(seq: int = 1, op: events_pb2.RuleChanged.Op.ValueType = UPSERT, **fields: object) -> events_pb2.RuleChanged:
    rule_id = str(uuid.uuid4())
    event = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq, op=op, rule_id=rule_id,
                                   client_id=str(uuid.uuid4()))
    if op == UPSERT:
        event.rule.CopyFrom(rule_pb2.Rule(rule_id=rule_id, client_id=event.client_id, severity="*", source="db",
                                          name="*", emails=["a@x.io"], enabled=True, version=seq))
    for name, value in fields.items():
        setattr(event, name, value)
    return event


@given(records(values_of(any_rule_changed()), topic=topics.RULE_CHANGED), int64s)
def test_any_record_decodes_to_a_change_an_index_takes_or_to_a_reason(record_: ConsumerRecord, last_seq: int) -> None:
    try:
        change = decode_rule_changed(record_)
    except InvalidEvent as error:
        assert str(error)
        return
    try:
        applies(change.seq, last_seq)
    except InvalidField as error:
        assert error.field == "seq"
    index = RuleIndex()
    if change.op in GRANT_OPS:
        grant = indexed_grant(change.grant)
        index.grant(grant)
        assert (index.grants(), index.owners(grant.source)) == ({grant}, {grant.client_id})
        assert rule_pb2.SourceGrant.FromString(change.grant.SerializeToString()) == change.grant
        assert change_key(change).startswith(f"grant:{change.client_id}:") and not change.rule_id
        return
    if change.op == UPSERT:
        rule = indexed_rule(change.rule)
        index.upsert(rule)
        assert rule_pb2.Rule.FromString(change.rule.SerializeToString()) == change.rule  # as the snapshot keeps it
    else:
        assert change.op == DELETE
    assert index.delete(change.rule_id) == (change.op == UPSERT)


def test_a_valid_upsert_and_delete_decode() -> None:
    upsert, delete = change(1, UPSERT), change(2, DELETE)
    assert decode_rule_changed(record(upsert.SerializeToString())) == upsert
    assert decode_rule_changed(record(delete.SerializeToString())) == delete


def grant_change(seq: int = 1, op: events_pb2.RuleChanged.Op.ValueType = GRANT,
                 grant: rule_pb2.SourceGrant | None = None, **fields: object) -> events_pb2.RuleChanged:
    """A grant's change as the rule-service writes it (of `grant`, by default a valid prefix
    grant), then `fields` set."""
    grant = grant or rule_pb2.SourceGrant(client_id=str(uuid.uuid4()), source="db.", prefix=True)
    event = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq, op=op, client_id=grant.client_id,
                                   grant=grant)
    for name, value in fields.items():
        setattr(event, name, value)
    return event


def rule_with_grant() -> events_pb2.RuleChanged:
    upsert = change(1, UPSERT)
    upsert.grant.CopyFrom(rule_pb2.SourceGrant(client_id=upsert.client_id, source="db"))
    return upsert


def test_a_valid_grant_and_revocation_decode_keyed_by_their_grant() -> None:
    given, revoked = grant_change(1, GRANT), grant_change(2, REVOKE)
    assert decode_rule_changed(record(given.SerializeToString())) == given
    assert decode_rule_changed(record(revoked.SerializeToString())) == revoked
    assert change_key(given) == f"grant:{given.client_id}:prefix:db."
    given.grant.prefix = False
    assert change_key(given) == f"grant:{given.client_id}:exact:db."


@pytest.mark.parametrize("value, reason", [
    (grant_change(grant=rule_pb2.SourceGrant(source="db")).SerializeToString(), "grant.client_id: missing"),
    (grant_change(op=REVOKE, client_id=str(uuid.uuid4())).SerializeToString(),
     "client_id: not the client of the grant"),
    (grant_change(rule_id=str(uuid.uuid4())).SerializeToString(), "rule_id: a grant's change names no rule"),
    (events_pb2.RuleChanged(schema_version=1, seq=1, op=GRANT).SerializeToString(), "grant: missing"),
    (rule_with_grant().SerializeToString(), "grant: a rule's change carries no grant"),
])
def test_an_invalid_grant_change_names_what_is_wrong(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match="^" + re.escape(reason)):
        decode_rule_changed(record(value))


@pytest.mark.parametrize("source, reason", [
    ("", "grant.source: missing"), ("*", "grant.source: '*' holds '*'"),
    ("db\u200b", "grant.source: contains the format character U+200B"),
])
def test_a_grant_the_api_would_never_have_given_is_refused(source: str, reason: str) -> None:
    value = grant_change(grant=rule_pb2.SourceGrant(client_id=str(uuid.uuid4()), source=source)).SerializeToString()
    with pytest.raises(InvalidEvent, match="^" + re.escape(reason)):
        decode_rule_changed(record(value))


@pytest.mark.parametrize("value, reason", [
    (b"\xff\xff not protobuf", "undecodable RuleChanged"),
    (change(schema_version=2).SerializeToString(), "schema_version: unsupported 2 (expected 1)"),
    (change(seq=0).SerializeToString(), "seq: must be positive"),
    (change(rule_id="").SerializeToString(), "rule_id: missing"),
    (change(rule_id=str(uuid.uuid4())).SerializeToString(), "rule: missing or not the rule named by rule_id"),
    (change(op=events_pb2.RuleChanged.OP_UNSPECIFIED).SerializeToString(), "op: unknown 0"),
])
def test_an_invalid_change_names_what_is_wrong(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match="^" + reason.replace("(", r"\(").replace(")", r"\)")):
        decode_rule_changed(record(value))


async def test_position_and_holds_follow_the_log(stack_settings: StackSettings) -> None:
    assert await rule_changed_position(stack_settings) == (0, 0)
    assert await rule_changed_holds(stack_settings, 0)
    assert not await rule_changed_holds(stack_settings, 1)  # beyond the end

    changes = [change(seq) for seq in (5, 6, 9)]
    await send(stack_settings, topics.RULE_CHANGED, [c.SerializeToString() for c in changes],
               keys=[c.rule_id.encode() for c in changes])
    assert await rule_changed_position(stack_settings) == (3, 9)
    assert [await rule_changed_holds(stack_settings, offset) for offset in range(5)] == [True] * 4 + [False]
