"""Decoding and validating `rule.changed` events (shared by the rule-updater and evaluator)."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError

from alerting.v1 import events_pb2
from common.kafka import InvalidEvent
from common.topics import SCHEMA_VERSION


def decode_rule_changed(record: ConsumerRecord) -> events_pb2.RuleChanged:
    try:
        change = events_pb2.RuleChanged.FromString(record.value or b"")
    except DecodeError as error:
        raise InvalidEvent(f"undecodable RuleChanged: {error}") from error
    if change.schema_version != SCHEMA_VERSION:
        raise InvalidEvent(f"schema_version: unsupported {change.schema_version} (expected {SCHEMA_VERSION})")
    if change.seq <= 0:
        raise InvalidEvent("seq: must be positive")
    if not change.rule_id:
        raise InvalidEvent("rule_id: missing")
    if change.op == events_pb2.RuleChanged.OP_UPSERT:
        if change.rule.rule_id != change.rule_id:
            raise InvalidEvent("rule: missing or not the rule named by rule_id")
    elif change.op != events_pb2.RuleChanged.OP_DELETE:
        raise InvalidEvent(f"op: unknown {change.op}")
    return change
