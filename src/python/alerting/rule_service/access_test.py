import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.validation import InvalidField
from alerting.rule_service.access import (
    ADMIN,
    TENANT,
    Caller,
    MalformedKey,
    PermissionDenied,
    bearer_key,
    expiry,
    key_id,
    key_name,
    new_key,
    parse_key,
    presented_key,
    secret_matches,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def problem(call: Callable[[], object]) -> str:
    with pytest.raises(InvalidField) as caught:
        call()
    return str(caught.value)


def test_a_new_key_parses_back_to_its_id_and_only_its_secret_matches_the_hash() -> None:
    key = new_key()
    parsed_id, secret = parse_key(key.key)
    assert parsed_id == key.key_id and key.key == f"ak_{key.key_id}.{secret}"
    assert key.secret_hash == hashlib.sha256(secret.encode()).digest() and len(secret) == 43
    assert secret_matches(key.secret_hash, secret)
    assert not secret_matches(key.secret_hash, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert new_key().key_id != key.key_id


@pytest.mark.parametrize("text", [
    "", "ak_", "ak_abcdefghijkl", "ak_abcdefghijkl.short", "xx_abcdefghijkl." + "a" * 43,
    "ak_ABCDEFGHIJKL." + "a" * 43, "ak_abcdefghijk1." + "a" * 43, "ak_abcdefghijkl." + "a" * 44,
])
def test_anything_but_a_well_formed_key_is_malformed(text: str) -> None:
    with pytest.raises(MalformedKey):
        parse_key(text)


def test_the_bearer_scheme_is_required_and_case_insensitive() -> None:
    assert bearer_key("Bearer ak_x") == "ak_x" and bearer_key("bearer  ak_x ") == "ak_x"
    for value in (None, "", "ak_x", "Basic ak_x", "Bearer "):
        with pytest.raises(MalformedKey):
            bearer_key(value)


def test_key_ids_are_validated_naming_the_field() -> None:
    assert key_id(" abcdefghijkl ") == "abcdefghijkl"
    with pytest.raises(InvalidField, match="key_id"):
        key_id("abc")


def test_a_tenant_sees_only_its_client_and_an_admin_sees_all() -> None:
    tenant = Caller("abcdefghijkl", TENANT, "c1")
    admin = Caller("mnopqrstuvwx", ADMIN, None)
    assert (tenant.visible_client(), admin.visible_client()) == ("c1", None)
    assert (tenant.may_see("c1"), tenant.may_see("c2"), admin.may_see("c2")) == (True, False, True)
    admin.require_admin("x")
    with pytest.raises(PermissionDenied, match="creating a client needs an ADMIN key"):
        tenant.require_admin("creating a client")


def test_a_key_name_is_one_plain_line_of_at_most_200_characters() -> None:
    assert key_name("  ci deploys ") == "ci deploys" and key_name("") == ""
    assert problem(lambda: key_name("ci\x00")) == "name: contains the control character U+0000"
    assert problem(lambda: key_name("ci\u202e")) == "name: contains the format character U+202E"
    assert problem(lambda: key_name("n" * 201)) == "name: at most 200 characters"


def test_exactly_one_authorization_value_is_read() -> None:
    key = new_key().key
    assert presented_key([("user-agent", "x"), ("authorization", f"Bearer {key}")]) == key
    with pytest.raises(MalformedKey, match="^no API key"):
        presented_key([("user-agent", "x")])
    with pytest.raises(MalformedKey) as caught:
        presented_key([("authorization", f"Bearer {key}"), ("authorization", f"Bearer {key}")])
    assert str(caught.value) == "2 authorization metadata values; send exactly one, `authorization: Bearer <key>`"


METADATA = st.lists(st.tuples(st.sampled_from(["authorization", "user-agent", "x-trace"]), st.text(max_size=60)))


@given(METADATA, st.lists(st.text(max_size=60), min_size=2, max_size=4))
def test_any_call_with_more_than_one_authorization_value_is_refused(
    others: list[tuple[str, str]], authorizations: list[str]
) -> None:
    metadata = [(name, value) for name, value in others if name != "authorization"]
    metadata += [("authorization", value) for value in authorizations]
    with pytest.raises(MalformedKey) as caught:
        presented_key(metadata)
    assert str(caught.value).startswith(f"{len(authorizations)} authorization metadata values;")


def test_an_expiry_is_in_the_future_and_a_tenant_made_key_expires_with_its_maker() -> None:
    later = NOW + timedelta(days=30, microseconds=250)
    seconds = int(later.timestamp())
    assert expiry(seconds, 250_000, NOW, None) == later
    assert problem(lambda: expiry(int(NOW.timestamp()), 0, NOW, None)) == \
        "expires_at: 2026-11-26T12:00:00+00:00 is not in the future"
    assert problem(lambda: expiry(-5, 0, NOW, None)) == "expires_at: 1969-12-31T23:59:55+00:00 is not in the future"
    assert problem(lambda: expiry(seconds, 1_000_000_000, NOW, None)) == \
        "expires_at: nanos 1000000000 is not in [0, 999999999]"
    assert problem(lambda: expiry(2**62, 0, NOW, None)) == \
        f"expires_at: {2**62} seconds since the epoch is after 9999-01-01"
    maker = NOW + timedelta(days=1)
    assert expiry(int(maker.timestamp()), 0, NOW, maker) == maker
    assert problem(lambda: expiry(seconds, 0, NOW, maker)) == \
        "expires_at: a key made by a TENANT key expires no later than that key (2026-11-27T12:00:00+00:00)"


@given(st.integers(min_value=-2**63, max_value=2**63 - 1), st.integers(min_value=-2**31, max_value=2**31 - 1))
def test_any_timestamp_is_an_expiry_after_now_or_an_invalid_expires_at(seconds: int, nanos: int) -> None:
    try:
        expires_at = expiry(seconds, nanos, NOW, None)
    except InvalidField as error:
        assert error.field == "expires_at"
    else:
        assert NOW < expires_at
        assert expires_at - datetime.fromtimestamp(seconds, UTC) == timedelta(microseconds=nanos // 1000)
