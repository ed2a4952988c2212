import uuid
from collections.abc import Callable

import pytest

from alerting.common.validation import InvalidField
from alerting.rules.validation import check_rule, rule_fields
from alerting.v1 import rule_pb2


def field_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InvalidField) as caught:
        call()
    return caught.value.field, str(caught.value)


def test_valid_rule_keeps_its_fields_and_dedupes_emails() -> None:
    assert rule_fields("HIGH", "db", "*", ["a@x.io", "a@x.io", "b@x.io"]) == (
        "HIGH", "db", "*", ["a@x.io", "b@x.io"])


def test_unknown_severity_names_the_field() -> None:
    field, message = field_of(lambda: rule_fields("URGENT", "db", "disk", ["a@x.io"]))
    assert field == "severity" and "URGENT" in message


def test_all_wildcard_rule_is_rejected() -> None:
    assert field_of(lambda: rule_fields("*", "*", "*", ["a@x.io"]))[0] == "rule"


@pytest.mark.parametrize("emails, field", [([], "emails"), (["ok@x.io", "not-an-email"], "emails[1]"),
                                           (["a b@x.io"], "emails[0]"), (["a,b@x.io"], "emails[0]")])
def test_bad_emails_name_the_field(emails: list[str], field: str) -> None:
    assert field_of(lambda: rule_fields("HIGH", "db", "disk", emails))[0] == field


def test_oversized_and_empty_patterns() -> None:
    assert field_of(lambda: rule_fields("HIGH", "x" * 257, "disk", ["a@x.io"]))[0] == "source"
    assert field_of(lambda: rule_fields("HIGH", "db", "", ["a@x.io"]))[0] == "name"


@pytest.mark.parametrize("source, name, emails, problem", [
    ("db\x00", "disk", ["a@x.io"], "source: contains the control character U+0000"),
    ("db", "disk\x1b[2J", ["a@x.io"], "name: contains the control character U+001B"),
    ("db", "dis\x85k", ["a@x.io"], "name: contains the control character U+0085"),
    ("db", "disk", ["a@x.io", "b\x00@x.io"], "emails[1]: contains the control character U+0000"),
    ("db", "disk", ["a@x.io\x7f"], "emails[0]: contains the control character U+007F"),
])
def test_control_characters_in_patterns_and_emails_are_rejected_naming_the_field(
    source: str, name: str, emails: list[str], problem: str
) -> None:
    assert field_of(lambda: rule_fields("HIGH", source, name, emails))[1] == problem


def test_emails_are_normalized_as_stored() -> None:
    assert rule_fields("HIGH", "db", "*", ["Ops@Example.COM", "ops@example.com"])[3] == ["Ops@example.com",
                                                                                        "ops@example.com"]


def stored_rule(**fields: object) -> rule_pb2.Rule:
    rule = rule_pb2.Rule(rule_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), severity="HIGH", source="db",
                         name="*", emails=["a@x.io"], enabled=True, version=1)
    for name, value in fields.items():
        if name == "emails":
            assert isinstance(value, list)
            rule.ClearField("emails")
            rule.emails.extend(value)
        else:
            setattr(rule, name, value)
    return rule


def test_a_stored_rule_as_the_rule_service_writes_it_is_valid() -> None:
    check_rule(stored_rule())


@pytest.mark.parametrize("fields, problem", [
    ({"rule_id": "R1"}, "rule.rule_id: not a UUID: 'R1'"),
    ({"client_id": str(uuid.uuid4()).upper()}, "rule.client_id: not a canonical UUID"),
    ({"severity": "*", "source": "*"}, "rule.rule: at least one of severity, source and name must not be *"),
    ({"source": "x" * 300}, "rule.source: at most 256 characters"),
    ({"emails": []}, "rule.emails: at least one email address is required"),
    ({"emails": ["not an address"]}, "rule.emails[0]: malformed email address"),
    ({"emails": ["a@x.io", "a@x.io"]}, "rule.emails: not normalized and unique"),
    ({"version": 0}, "rule.version: must be positive"),
])
def test_a_rule_the_api_would_never_have_accepted_is_refused(fields: dict[str, object], problem: str) -> None:
    assert field_of(lambda: check_rule(stored_rule(**fields)))[1].startswith(problem)
