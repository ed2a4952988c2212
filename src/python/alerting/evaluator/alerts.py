"""Decoding `alerts.new`, and the `alerts.matched` messages one alert produces."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from alerting.common.kafka import InvalidEvent, decode
from alerting.common.topics import SCHEMA_VERSION
from alerting.common.vocabulary import SEVERITY_NAMES
from alerting.evaluator.matcher import ClientMatch, IndexedRule, RuleFields
from alerting.v1 import alert_pb2, events_pb2, rule_pb2


def decode_alert_new(record: ConsumerRecord) -> events_pb2.AlertNew:
    event = decode(record, events_pb2.AlertNew)
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


def rule_fields(rule: rule_pb2.Rule) -> RuleFields:
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
