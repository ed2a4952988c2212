import unicodedata
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.validation import InvalidField
from alerting.rules.validation import check_grant, check_rule, granted_source, rule_fields
from alerting.v1 import rule_pb2


def field_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InvalidField) as caught:
        call()
    return caught.value.field, str(caught.value)


def test_valid_rule_keeps_its_fields_and_dedupes_emails() -> None:
    assert rule_fields("HIGH", "db", "*", ["a@x.io", "a@x.io", "b@x.io"], ()) == (
        "HIGH", "db", "*", ["a@x.io", "b@x.io"], [])
    receiver = "0b7e7dbe-8c4c-4b57-9b1a-8d2b4c3f2a10"
    assert rule_fields("HIGH", "db", "*", [], [receiver.upper()]) == ("HIGH", "db", "*", [], [receiver])


def test_unknown_severity_names_the_field() -> None:
    field, message = field_of(lambda: rule_fields("URGENT", "db", "disk", ["a@x.io"], ()))
    assert field == "severity" and "URGENT" in message


def test_all_wildcard_rule_is_rejected() -> None:
    assert field_of(lambda: rule_fields("*", "*", "*", ["a@x.io"], ()))[0] == "rule"


@pytest.mark.parametrize("emails, field", [([], "emails"), (["ok@x.io", "not-an-email"], "emails[1]"),
                                           (["a b@x.io"], "emails[0]"), (["a,b@x.io"], "emails[0]")])
def test_bad_emails_name_the_field(emails: list[str], field: str) -> None:
    assert field_of(lambda: rule_fields("HIGH", "db", "disk", emails, ()))[0] == field


def test_oversized_and_empty_patterns() -> None:
    assert field_of(lambda: rule_fields("HIGH", "x" * 257, "disk", ["a@x.io"], ()))[0] == "source"
    assert field_of(lambda: rule_fields("HIGH", "db", "", ["a@x.io"], ()))[0] == "name"


@pytest.mark.parametrize("source, name, emails, problem", [
    ("db\x00", "disk", ["a@x.io"], "source: contains the control character U+0000"),
    ("db", "disk\x1b[2J", ["a@x.io"], "name: contains the control character U+001B"),
    ("db", "dis\x85k", ["a@x.io"], "name: contains the control character U+0085"),
    ("db", "disk", ["a@x.io", "b\x00@x.io"], "emails[1]: contains the control character U+0000"),
    ("db", "disk", ["a@x.io\x7f"], "emails[0]: contains the control character U+007F"),
    ("db\u202e", "disk", ["a@x.io"], "source: contains the format character U+202E"),
    ("db", "di\u200dsk", ["a@x.io"], "name: contains the format character U+200D"),
    ("db", "disk", ["a\u200b@x.io"], "emails[0]: contains the format character U+200B"),
])
def test_control_characters_in_patterns_and_emails_are_rejected_naming_the_field(
    source: str, name: str, emails: list[str], problem: str
) -> None:
    assert field_of(lambda: rule_fields("HIGH", source, name, emails, ()))[1] == problem


FORMAT_CHARACTERS = st.characters(categories=["Cf"])
PATTERN = st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=20)


@given(PATTERN, PATTERN, FORMAT_CHARACTERS, st.booleans())
def test_a_format_character_anywhere_in_a_pattern_is_refused_naming_the_pattern(
    before: str, after: str, hidden: str, in_source: bool
) -> None:
    pattern = before + hidden + after
    source, name = (pattern, "disk") if in_source else ("db", pattern)
    field, message = field_of(lambda: rule_fields("HIGH", source, name, ["a@x.io"], ()))
    assert (field, message.partition(": ")[2]) == (
        "source" if in_source else "name", f"contains the format character U+{ord(hidden):04X}")


def test_emails_are_normalized_as_stored() -> None:
    assert rule_fields("HIGH", "db", "*", ["Ops@Example.COM", "ops@example.com"], ())[3] == ["Ops@example.com",
                                                                                        "ops@example.com"]


def stored_rule(**fields: object) -> rule_pb2.Rule:
    rule = rule_pb2.Rule(rule_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), severity="HIGH", source="db",
                         name="*", emails=["a@x.io"], enabled=True, version=1)
    for name, value in fields.items():
        if name == "emails":
            assert isinstance(value, list)
            rule.ClearField("emails")
            rule.emails.extend(value)
        elif name == "receiver_ids":
            assert isinstance(value, list)
            rule.ClearField("receiver_ids")
            rule.receiver_ids.extend(value)
        else:
            setattr(rule, name, value)
    return rule


def test_a_stored_rule_as_the_rule_service_writes_it_is_valid() -> None:
    check_rule(stored_rule())
    receivers = sorted(str(uuid.uuid4()) for _ in range(2))
    check_rule(stored_rule(emails=[], receiver_ids=receivers))
    check_rule(stored_rule(receiver_ids=receivers))


@pytest.mark.parametrize("fields, problem", [
    ({"rule_id": "R1"}, "rule.rule_id: not a UUID: 'R1'"),
    ({"client_id": str(uuid.uuid4()).upper()}, "rule.client_id: not a canonical UUID"),
    ({"severity": "*", "source": "*"}, "rule.rule: at least one of severity, source and name must not be *"),
    ({"source": "x" * 300}, "rule.source: at most 256 characters"),
    ({"emails": []}, "rule.emails: at least one email address or receiver is required"),
    ({"receiver_ids": ["r-1"]}, "rule.receiver_ids[0]: not a UUID"),
    ({"receiver_ids": ["6d1c8f7e-1111-4d3c-8f2a-2b9d3c4e5f60", "0b4a4d2e-54f5-4f9a-9a57-6f0f5f8b2f11"]},
     "rule.receiver_ids: not canonical, unique and sorted"),
    ({"emails": ["not an address"]}, "rule.emails[0]: malformed email address"),
    ({"emails": ["a@x.io", "a@x.io"]}, "rule.emails: not normalized and unique"),
    ({"version": 0}, "rule.version: must be positive"),
])
def test_a_rule_the_api_would_never_have_accepted_is_refused(fields: dict[str, object], problem: str) -> None:
    assert field_of(lambda: check_rule(stored_rule(**fields)))[1].startswith(problem)


# Sources around the bounds: empty, at and past 256 characters, with "*", with refused characters.
grant_sources = st.one_of(st.text(max_size=12), st.text(min_size=250, max_size=260),
                          st.builds(lambda text, star: text + star, st.text(max_size=8), st.just("*")))


@given(grant_sources)
def test_a_grant_source_is_accepted_exactly_when_an_alert_could_carry_it_and_it_holds_no_star(source: str) -> None:
    alert_could_carry_it = 1 <= len(source) <= 256 and all(
        unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp") for char in source)
    try:
        accepted = granted_source(source) == source
    except InvalidField as error:
        assert error.field == "source"
        accepted = False
    assert accepted == (alert_could_carry_it and "*" not in source)


@pytest.mark.parametrize("grant, problem", [
    (rule_pb2.SourceGrant(client_id="C1", source="db"), "grant.client_id: not a UUID: 'C1'"),
    (rule_pb2.SourceGrant(client_id=str(uuid.UUID(int=0xABC)).upper(), source="db"),
     "grant.client_id: not a canonical"),
    (rule_pb2.SourceGrant(client_id=str(uuid.UUID(int=1)), source="db*", prefix=True), "grant.source: 'db*' holds"),
    (rule_pb2.SourceGrant(client_id=str(uuid.UUID(int=1))), "grant.source: missing"),
])
def test_a_grant_the_api_would_never_have_given_is_refused_naming_the_field(
    grant: rule_pb2.SourceGrant, problem: str
) -> None:
    assert field_of(lambda: check_grant(grant))[1].startswith(problem)
    check_grant(rule_pb2.SourceGrant(client_id=str(uuid.UUID(int=1)), source="db", prefix=True))
