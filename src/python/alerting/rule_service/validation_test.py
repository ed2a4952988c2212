from collections.abc import Callable

import pytest

from alerting.common.validation import InvalidField, canonical_uuid
from alerting.rule_service import validation


def field_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InvalidField) as caught:
        call()
    return caught.value.field, str(caught.value)


def test_control_characters_in_a_client_name_are_rejected() -> None:
    problem = ("name", "name: contains the control character U+0000")
    assert field_of(lambda: validation.client_name("acme\x00")) == problem
    assert validation.client_name(" Acmé Ünited ") == "Acmé Ünited"


def test_invisible_format_characters_in_a_client_name_are_rejected() -> None:
    assert field_of(lambda: validation.client_name("acme\u202eexe.pdf")) == (
        "name", "name: contains the format character U+202E")
    assert field_of(lambda: validation.client_name("ac\u200bme")) == (
        "name", "name: contains the format character U+200B")


def test_ids_names_versions_and_pages() -> None:
    assert field_of(lambda: canonical_uuid("nope", "rule_id"))[0] == "rule_id"
    assert field_of(lambda: validation.client_name("  "))[0] == "name"
    assert field_of(lambda: validation.expected_version(0, required=True))[0] == "expected_version"
    assert validation.expected_version(0, required=False) == 0
    assert validation.page_size(0) == validation.DEFAULT_PAGE_SIZE
    assert field_of(lambda: validation.page_size(5000))[0] == "page_size"
    assert field_of(lambda: validation.decode_page_token("garbage!"))[0] == "page_token"
    some_id = "0b7e7dbe-8c4c-4b57-9b1a-8d2b4c3f2a10"
    assert validation.decode_page_token(validation.encode_page_token(some_id)) == some_id
