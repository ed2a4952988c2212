"""The platform's shared terms: alert severities by name and by protobuf value, and the
rule wildcard. Every component spells them through this module."""

from __future__ import annotations

from typing import TypeAlias

from alerting.v1 import alert_pb2

Severity: TypeAlias = alert_pb2.Severity.ValueType

# Protobuf value -> name, in ascending severity; SEVERITY_UNSPECIFIED is no severity.
SEVERITY_NAMES: dict[Severity, str] = {
    value: name.removeprefix("SEVERITY_")
    for name, value in alert_pb2.Severity.items()
    if value != alert_pb2.SEVERITY_UNSPECIFIED
}
# Name -> protobuf value.
SEVERITY_VALUES: dict[str, Severity] = {name: value for value, name in SEVERITY_NAMES.items()}
SEVERITIES: tuple[str, ...] = tuple(SEVERITY_VALUES)

# In a rule's severity, source or name: matches any value.
WILDCARD = "*"


def severity_name(value: Severity) -> str:
    """The name of a severity value; an unknown value is shown as its number."""
    return SEVERITY_NAMES.get(value, str(value))
