"""What makes a rule or a source grant valid (pure): the rule-service checks requests with
it, and the rule-updater and the evaluator check every rule and grant that reaches them
through `rule.changed`, so that what the API would never have accepted cannot reach an
index or the snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from alerting.common.validation import (
    MAX_FIELD,
    InvalidField,
    email_addresses,
    require_canonical_uuid,
    text,
)
from alerting.common.vocabulary import SEVERITIES, WILDCARD
from alerting.rules.receivers import receiver_ids
from alerting.v1 import rule_pb2


def patterns(severity: str, source: str, name: str) -> tuple[str, str, str]:
    """What a rule or a silence matches, checked: a severity name or "*", and a source and a
    name that an alert could carry, or "*"."""
    if severity not in (*SEVERITIES, WILDCARD):
        raise InvalidField("severity", f"unknown severity {severity!r} (expected LOW, MEDIUM, HIGH, CRITICAL or *)")
    text(source, "source", MAX_FIELD, missing="missing (use * to match any value)")
    text(name, "name", MAX_FIELD, missing="missing (use * to match any value)")
    return severity, source, name


def rule_patterns(severity: str, source: str, name: str) -> None:
    """A rule's patterns: a silence's, and not all three "*"."""
    patterns(severity, source, name)
    if severity == source == name == WILDCARD:
        raise InvalidField("rule", "at least one of severity, source and name must not be *")


def rule_fields(severity: str, source: str, name: str, emails: list[str], receiver_id_values: Sequence[str]
                ) -> tuple[str, str, str, list[str], list[str]]:
    """The rule's patterns and endpoints, checked (rule_endpoints)."""
    rule_patterns(severity, source, name)
    return severity, source, name, *rule_endpoints(emails, receiver_id_values)


def rule_endpoints(emails: list[str], receiver_id_values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Where a rule's notifications go, checked: its emails normalized and de-duplicated, in
    order, and its receivers' ids canonical and sorted; at least one of either."""
    ids = receiver_ids(receiver_id_values)
    if not emails and not ids:
        raise InvalidField("emails", "at least one email address or receiver is required")
    return (email_addresses(emails) if emails else []), ids


def check_rule(rule: rule_pb2.Rule, field: str = "rule") -> None:
    """A stored rule as the rule-service writes it: canonical ids, valid fields, normalized
    emails and a version."""
    require_canonical_uuid(rule.rule_id, f"{field}.rule_id")
    require_canonical_uuid(rule.client_id, f"{field}.client_id")
    try:
        rule_patterns(rule.severity, rule.source, rule.name)
        emails, ids = rule_endpoints(list(rule.emails), list(rule.receiver_ids))
    except InvalidField as error:
        raise InvalidField(f"{field}.{error.field}", str(error).partition(": ")[2]) from error
    if emails != list(rule.emails):
        raise InvalidField(f"{field}.emails", "not normalized and unique as the rule-service stores them")
    if ids != list(rule.receiver_ids):
        raise InvalidField(f"{field}.receiver_ids", "not canonical, unique and sorted as the rule-service stores them")
    if rule.version < 1:
        raise InvalidField(f"{field}.version", "must be positive")


def granted_source(source: str) -> str:
    """A grant's source, exact or prefix: what an alert's source may be (1-256 characters, one
    plain line), without "*", which a rule reads as "any" and a grant would read literally."""
    text(source, "source", MAX_FIELD)
    if WILDCARD in source:
        raise InvalidField("source", f"{source!r} holds {WILDCARD!r}: grant an exact source, or a prefix"
                                     " (prefix set) for every source that starts with it")
    return source


def check_grant(grant: rule_pb2.SourceGrant, field: str = "grant") -> None:
    """A stored grant as the rule-service writes it: a canonical client id and a valid source."""
    require_canonical_uuid(grant.client_id, f"{field}.client_id")
    try:
        granted_source(grant.source)
    except InvalidField as error:
        raise InvalidField(f"{field}.{error.field}", str(error).partition(": ")[2]) from error
