"""Decoding `alerts.new`, and the `alerts.matched` messages one alert produces."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError

from alerting.v1 import alert_pb2, events_pb2, rule_pb2
from common.kafka import InvalidEvent
from common.topics import SCHEMA_VERSION
from evaluator.matcher import ClientMatch, IndexedRule

SEVERITY_NAMES = {
    alert_pb2.SEVERITY_LOW: "LOW",
    alert_pb2.SEVERITY_MEDIUM: "MEDIUM",
    alert_pb2.SEVERITY_HIGH: "HIGH",
    alert_pb2.SEVERITY_CRITICAL: "CRITICAL",
}


def decode_alert_new(record: ConsumerRecord) -> events_pb2.AlertNew:
    try:
        event = events_pb2.AlertNew.FromString(record.value or b"")
    except DecodeError as error:
        raise InvalidEvent(f"undecodable AlertNew: {error}") from error
    if event.schema_version != SCHEMA_VERSION:
        raise InvalidEvent(f"schema_version: unsupported {event.schema_version} (expected {SCHEMA_VERSION})")
    alert = event.alert
    if not alert.alert_id:
        raise InvalidEvent("alert.alert_id: missing")
    if alert.severity not in SEVERITY_NAMES:
        raise InvalidEvent(f"alert.severity: unknown value {alert.severity}")
    if not alert.source:
        raise InvalidEvent("alert.source: missing")
    if not alert.name:
        raise InvalidEvent("alert.name: missing")
    return event


def rule_fields(rule: rule_pb2.Rule) -> tuple:
    """IndexedRule's fields in order, as a plain tuple: what RuleIndex.load takes, and
    cheaper to build than the IndexedRule it makes of them."""
    return (rule.rule_id, rule.client_id, rule.severity, rule.source, rule.name, tuple(rule.emails), rule.enabled,
            rule.version)


def indexed_rule(rule: rule_pb2.Rule) -> IndexedRule:
    return IndexedRule(*rule_fields(rule))


def matched_event(alert: alert_pb2.Alert, match: ClientMatch) -> events_pb2.AlertMatched:
    event = events_pb2.AlertMatched(
        schema_version=SCHEMA_VERSION,
        client_id=match.client_id,
        alert=alert,
        rule_ids=match.rule_ids,
        emails=match.emails,
    )
    event.matched_at.GetCurrentTime()
    return event
