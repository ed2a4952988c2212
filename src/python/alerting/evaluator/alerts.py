"""Decoding `alerts.new`, and the `alerts.matched` messages one alert produces."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from alerting.common.kafka import InvalidEvent, decode
from alerting.common.topics import SCHEMA_VERSION
from alerting.common.validation import InvalidField, check_alert
from alerting.evaluator.matcher import ClientMatch, Grant, IndexedRule, RuleFields
from alerting.rules.receivers import endpoint
from alerting.v1 import alert_pb2, events_pb2, rule_pb2


def decode_alert_new(record: ConsumerRecord) -> events_pb2.AlertNew:
    event = decode(record, events_pb2.AlertNew)
    try:
        check_alert(event.alert, datetime.now(UTC))
    except InvalidField as error:
        raise InvalidEvent(str(error)) from error
    return event


def rule_fields(rule: rule_pb2.Rule) -> RuleFields:
    """IndexedRule's fields in order, as a plain tuple: what RuleIndex.load takes, and
    cheaper to build than the IndexedRule it makes of them. Its endpoints are its emails
    and its receivers (`receiver:<id>`): a notification goes to each."""
    return (rule.rule_id, rule.client_id, rule.severity, rule.source, rule.name,
            rule_endpoints(rule.emails, rule.receiver_ids), rule.enabled, rule.version)


def rule_endpoints(emails: Iterable[str], receiver_ids: Iterable[str]) -> tuple[str, ...]:
    """Where a rule's notifications go: its emails, then its receivers."""
    return (*emails, *(endpoint(receiver_id) for receiver_id in receiver_ids))


def indexed_rule(rule: rule_pb2.Rule) -> IndexedRule:
    return IndexedRule(*rule_fields(rule))


def indexed_grant(grant: rule_pb2.SourceGrant) -> Grant:
    return Grant(grant.client_id, grant.source, grant.prefix)


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
