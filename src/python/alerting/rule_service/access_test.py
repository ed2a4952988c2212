import hashlib

import pytest

from alerting.common.validation import InvalidField
from alerting.rule_service.access import (
    ADMIN,
    TENANT,
    Caller,
    MalformedKey,
    PermissionDenied,
    bearer_key,
    key_id,
    new_key,
    parse_key,
    secret_matches,
)


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
