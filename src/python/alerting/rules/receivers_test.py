"""Receivers' rules (pure): which addresses and URLs requests may go to, on generated
addresses; endpoints; sealing; and a signature a receiver verifies with the standard
library alone, as docs/overview.md shows."""

import hashlib
import hmac
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.validation import InvalidField
from alerting.rules.receivers import (
    OutboundPolicy,
    Sealer,
    endpoint,
    new_secret,
    receiver_ids,
    receiver_of,
    redacted,
    refused_address,
    signature,
    url,
)

NOT_PLAIN = "url: must be ASCII without spaces or control characters (percent-encode the rest)"
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


def public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global


@given(addresses)
def test_requests_go_to_public_addresses_only(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert (refused_address(address, OutboundPolicy()) is None) == public(address)


@given(addresses)
def test_an_allowed_network_allows_its_addresses_whatever_they_are(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    network = ipaddress.ip_network(f"{address}/{address.max_prefixlen}")
    assert refused_address(address, OutboundPolicy(allowed_networks=(network,))) is None


@pytest.mark.parametrize(("address", "reason"), [
    ("169.254.169.254", "169.254.169.254 is the cloud metadata address"),
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("::ffff:127.0.0.1", "127.0.0.1 is a loopback address"),
    ("fe80::1", "fe80::1 is a link-local address"),
    ("10.1.2.3", "10.1.2.3 is not a public address"),
    ("100.64.0.1", "100.64.0.1 is not a public address"),
    ("fd00:ec2::254", "fd00:ec2::254 is not a public address"),
    ("8.8.8.8", None),
])
def test_named_addresses(address: str, reason: str | None) -> None:
    assert refused_address(ipaddress.ip_address(address), OutboundPolicy()) == reason


@pytest.mark.parametrize(("value", "problem"), [
    ("http://hooks.example.com/x", "url: scheme 'http' is not allowed (use https)"),
    ("ftp://hooks.example.com/x", "url: scheme 'ftp' is not allowed (use https)"),
    ("hooks.example.com/x", "url: scheme '(none)' is not allowed (use https)"),
    ("https://user:pw@hooks.example.com/", "url: must not hold credentials (a receiver's secret signs its requests)"),
    ("https:///x", "url: has no host"),
    ("https://10.0.0.8/hook", "url: 10.0.0.8 is not a public address; requests may not go there"),
    ("https://[::1]:8443/hook", "url: ::1 is a loopback address; requests may not go there"),
    ("https://hooks.example.com:99999/", "url: not a URL: Port out of range 0-65535"),
    ("https://hooks.example.com/a b", NOT_PLAIN),
    ("https://hooks.exämple.com/", NOT_PLAIN),
    ("", "url: missing"),
])
def test_urls_that_may_not_be_saved(value: str, problem: str) -> None:
    with pytest.raises(InvalidField) as refused:
        url(value, OutboundPolicy())
    assert str(refused.value) == problem


def test_urls_that_may_be_saved() -> None:
    assert url("https://hooks.example.com/a?b=c", OutboundPolicy()) == "https://hooks.example.com/a?b=c"
    assert url("https://8.8.8.8:8443/", OutboundPolicy()) == "https://8.8.8.8:8443/"
    local = OutboundPolicy.of(True, ["127.0.0.0/8"])
    assert url("http://127.0.0.1:8091/hooks/x", local) == "http://127.0.0.1:8091/hooks/x"


@given(st.uuids().map(str))
def test_a_receivers_endpoint_is_never_an_address_and_names_it(receiver_id: str) -> None:
    assert receiver_of(endpoint(receiver_id)) == receiver_id
    assert "@" not in endpoint(receiver_id)
    assert receiver_of("ops@example.com") is None


def test_receiver_ids_are_canonical_unique_and_sorted() -> None:
    upper = "8C6B1B6E-3C9E-4F55-9D0A-9E2D52A7B3F1"
    assert receiver_ids([upper, upper.lower(), "00000000-0000-4000-8000-000000000000"]) == [
        "00000000-0000-4000-8000-000000000000", upper.lower()]
    with pytest.raises(InvalidField, match=r"^receiver_ids\[1\]: "):
        receiver_ids([upper, "not-an-id"])


@given(st.binary(max_size=2000), st.integers(0, 2**40))
def test_a_signature_verifies_with_the_standard_library_only(body: bytes, timestamp: int) -> None:
    secret = new_secret()
    header = signature(secret, timestamp, body)
    # What a receiver writes: the docs' snippet.
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, "v1=" + expected)
    assert signature(secret, timestamp + 1, body) != header
    assert signature(new_secret(), timestamp, body) != header


def test_a_sealed_secret_opens_with_its_key_only() -> None:
    key = "k" * 40
    sealed = Sealer(key).seal("whsec_abc")
    assert b"whsec_abc" not in sealed
    assert Sealer(key).unseal(sealed) == "whsec_abc"
    with pytest.raises(ValueError, match="cannot be unsealed"):
        Sealer("j" * 40).unseal(sealed)
    with pytest.raises(ValueError, match="at least 32"):
        Sealer("short")


def test_a_slack_url_is_shown_without_its_secret_part() -> None:
    assert redacted("https://hooks.slack.com/services/T0/B0/XXXX") == "https://hooks.slack.com/services/T0/B0/…"
    assert redacted("https://hooks.example.com/") == "https://hooks.example.com/…"
    assert redacted("https://hooks.example.com:8443/a/b?token=1") == "https://hooks.example.com:8443/a/…"
