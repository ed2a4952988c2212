from collections.abc import Callable

import pytest

from alerting.rule_service import validation
from alerting.rule_service.validation import InvalidField


def field_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InvalidField) as caught:
        call()
    return caught.value.field, str(caught.value)


def test_valid_rule_keeps_its_fields_and_dedupes_emails() -> None:
    assert validation.rule_fields("HIGH", "db", "*", ["a@x.io", "a@x.io", "b@x.io"]) == (
        "HIGH", "db", "*", ["a@x.io", "b@x.io"])


def test_unknown_severity_names_the_field() -> None:
    field, message = field_of(lambda: validation.rule_fields("URGENT", "db", "disk", ["a@x.io"]))
    assert field == "severity" and "URGENT" in message


def test_all_wildcard_rule_is_rejected() -> None:
    assert field_of(lambda: validation.rule_fields("*", "*", "*", ["a@x.io"]))[0] == "rule"


@pytest.mark.parametrize("emails, field", [([], "emails"), (["ok@x.io", "not-an-email"], "emails[1]"),
                                           (["a b@x.io"], "emails[0]"), (["a,b@x.io"], "emails[0]")])
def test_bad_emails_name_the_field(emails: list[str], field: str) -> None:
    assert field_of(lambda: validation.rule_fields("HIGH", "db", "disk", emails))[0] == field


def test_oversized_and_empty_patterns() -> None:
    assert field_of(lambda: validation.rule_fields("HIGH", "x" * 257, "disk", ["a@x.io"]))[0] == "source"
    assert field_of(lambda: validation.rule_fields("HIGH", "db", "", ["a@x.io"]))[0] == "name"


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
    assert field_of(lambda: validation.rule_fields("HIGH", source, name, emails))[1] == problem


def test_control_characters_in_a_client_name_are_rejected() -> None:
    problem = ("name", "name: contains the control character U+0000")
    assert field_of(lambda: validation.client_name("acme\x00")) == problem
    assert validation.client_name(" Acmé Ünited ") == "Acmé Ünited"


def test_ids_names_versions_and_pages() -> None:
    assert field_of(lambda: validation.require_uuid("nope", "rule_id"))[0] == "rule_id"
    assert field_of(lambda: validation.client_name("  "))[0] == "name"
    assert field_of(lambda: validation.expected_version(0, required=True))[0] == "expected_version"
    assert validation.expected_version(0, required=False) == 0
    assert validation.page_size(0) == validation.DEFAULT_PAGE_SIZE
    assert field_of(lambda: validation.page_size(5000))[0] == "page_size"
    assert field_of(lambda: validation.decode_page_token("garbage!"))[0] == "page_token"
    some_id = "0b7e7dbe-8c4c-4b57-9b1a-8d2b4c3f2a10"
    assert validation.decode_page_token(validation.encode_page_token(some_id)) == some_id
