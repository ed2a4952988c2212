"""Quotas and limits of a real rule-service: rules, recipients and keys per client, the size
of a request, the per-tenant rate limit, and failed authentications per peer, each
configurable; and where the per-peer limit applies and the recipient cap's rule (pure)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from alerting.common.validation import InvalidField
from alerting.rule_service.access import new_key
from alerting.rule_service.errors import QuotaExceeded
from alerting.rule_service.limits import check_recipients, peer_address
from alerting.testsupport.calls import answer
from alerting.testsupport.services import RuleServiceUnderTest, fetch, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import api_key_service_pb2_grpc, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api


def rule(client_id: str, source: str, emails: tuple[str, ...] = ("ops@x.io",)) -> api.CreateRuleRequest:
    return api.CreateRuleRequest(client_id=client_id, severity="HIGH", source=source, name="*", emails=emails)


async def error_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_client_may_have_at_most_max_rules_per_client(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, max_rules_per_client=2) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        first = await stub.CreateRule(rule(client.client_id, "a"))
        await stub.CreateRule(rule(client.client_id, "b"))
        refused = await error_of(stub.CreateRule(rule(client.client_id, "c")))
        await stub.DeleteRule(api.DeleteRuleRequest(rule_id=first.rule_id))
        await stub.CreateRule(rule(client.client_id, "c"))  # room again
        listed = await stub.ListRules(api.ListRulesRequest(client_id=client.client_id))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.details() == (f"client_id: client {client.client_id} has 2 rules, the most a client may have (2);"
                                 " delete one first")
    assert sorted(r.source for r in listed.rules) == ["b", "c"]


async def test_a_request_larger_than_max_request_bytes_is_refused(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, max_request_bytes=4096) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        emails = [f"user{number}@example.com" for number in range(400)]  # about 9 KB
        refused = await error_of(stub.CreateRule(api.CreateRuleRequest(
            client_id=client.client_id, severity="HIGH", source="db", name="*", emails=emails)))
        listed = await stub.ListRules(api.ListRulesRequest(client_id=client.client_id))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and list(listed.rules) == []


async def test_a_tenant_past_its_rate_limit_is_refused_and_no_one_else_is(stack_settings: StackSettings) -> None:
    # 0.01 requests/s: once the burst of 3 is spent, no token comes back during the test.
    async with rule_service(stack_settings, rate_limit_per_second=0.01, rate_limit_burst=3) as service:
        async with service.channel() as channel:
            stub = rule_service_pb2_grpc.RuleServiceStub(channel)
            keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
            noisy, quiet = [await stub.CreateClient(api.CreateClientRequest(name=name)) for name in ("noisy", "quiet")]
            noisy_keys = [await keys.CreateApiKey(keys_api.CreateApiKeyRequest(
                role=keys_api.ROLE_TENANT, client_id=noisy.client_id)) for _ in range(2)]
            quiet_key = await keys.CreateApiKey(keys_api.CreateApiKeyRequest(
                role=keys_api.ROLE_TENANT, client_id=quiet.client_id))
        answers = []
        for number in range(5):  # the client's keys share one bucket
            async with service.channel(api_key=noisy_keys[number % 2].key) as channel:
                try:
                    await rule_service_pb2_grpc.RuleServiceStub(channel).ListRules(api.ListRulesRequest())
                    answers.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    answers.append(error.code())
                    refusal = "rate limit of 0.01 requests/s per client exceeded; retry in "
                    assert (error.details() or "").startswith(refusal)
        async with service.channel(api_key=quiet_key.key) as channel:
            await rule_service_pb2_grpc.RuleServiceStub(channel).ListRules(api.ListRulesRequest())
        async with service.channel() as channel:  # admin keys are not limited
            for _ in range(10):
                await rule_service_pb2_grpc.RuleServiceStub(channel).ListClients(api.ListClientsRequest())
    assert answers == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2


OK = (grpc.StatusCode.OK, None)


async def test_a_client_may_have_at_most_max_recipients_per_client_distinct_addresses(
        stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, max_recipients_per_client=3) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client_id = (await stub.CreateClient(api.CreateClientRequest(name="acme"))).client_id
        first = await stub.CreateRule(rule(client_id, "a", ("a@x.io", "b@x.io")))
        await stub.CreateRule(rule(client_id, "b", ("b@x.io", "c@x.io")))  # 3 distinct: a, b, c

        def update(emails: tuple[str, ...]) -> api.UpdateRuleRequest:
            return api.UpdateRuleRequest(rule_id=first.rule_id, severity="HIGH", source="a", name="*", emails=emails,
                                         enabled=True, expected_version=1)

        answers = [
            await answer(stub.CreateRule(rule(client_id, "c", ("d@x.io",)))),  # a fourth address
            await answer(stub.CreateRule(rule(client_id, "c", ("c@x.io", "a@x.io")))),  # addresses it has
            await answer(stub.UpdateRule(update(("a@x.io", "d@x.io")))),  # b stays (rule b): a, b, c, d
            await answer(stub.CreateRule(rule(client_id, "d", ("1@x.io", "2@x.io", "3@x.io", "4@x.io")))),
            await answer(stub.UpdateRule(update(("d@x.io",)))),  # a stays (rule c): a, b, c, d
        ]
    too_many = (f"emails: client {client_id} would have 4 distinct recipients across its rules, more than the 3"
                " a client may have; reuse its addresses or remove some first")
    assert answers == [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, too_many),
        OK,
        (grpc.StatusCode.RESOURCE_EXHAUSTED, too_many),
        (grpc.StatusCode.INVALID_ARGUMENT,
         "emails: 4 addresses, more than the 3 distinct recipients a client may have"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, too_many),
    ]


async def test_a_client_past_a_lowered_recipient_limit_keeps_its_addresses_but_grows_no_further(
        stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client_id = (await stub.CreateClient(api.CreateClientRequest(name="acme"))).client_id
        made = await stub.CreateRule(rule(client_id, "a", ("a@x.io", "b@x.io", "c@x.io")))
    async with rule_service(stack_settings, max_recipients_per_client=2) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)

        def update(version: int, emails: tuple[str, ...]) -> api.UpdateRuleRequest:
            return api.UpdateRuleRequest(rule_id=made.rule_id, severity="LOW", source="a", name="*", emails=emails,
                                         enabled=False, expected_version=version)

        answers = [await answer(stub.UpdateRule(update(1, ("a@x.io", "b@x.io", "c@x.io")))),  # the same three
                   await answer(stub.UpdateRule(update(2, ("a@x.io", "b@x.io", "d@x.io")))),  # still three
                   await answer(stub.UpdateRule(update(3, ("a@x.io", "b@x.io", "c@x.io", "d@x.io")))),
                   await answer(stub.CreateRule(rule(client_id, "b", ("e@x.io",))))]
    assert answers == [OK, OK, (grpc.StatusCode.INVALID_ARGUMENT,
                                "emails: 4 addresses, more than the 2 distinct recipients a client may have"),
                       (grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"emails: client {client_id} would have 4 distinct recipients across its rules, more than"
                        " the 2 a client may have; reuse its addresses or remove some first")]


@given(st.integers(0, 40), st.integers(0, 20), st.integers(1, 30), st.data())
def test_a_change_is_refused_exactly_when_it_takes_a_client_past_its_limit_and_its_current_count(
        before: int, requested: int, limit: int, data: st.DataObject) -> None:
    after = data.draw(st.integers(requested, before + requested))  # the rule's own, at least
    try:
        check_recipients("c", requested, before, after, limit)
    except InvalidField as error:
        assert (error.field, after > max(limit, before), requested > limit) == ("emails", True, True)
    except QuotaExceeded:
        assert (after > max(limit, before), requested > limit) == (True, False)
    else:
        assert after <= max(limit, before)


async def test_a_client_may_have_at_most_max_keys_per_client_valid_keys(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, max_keys_per_client=2) as service, service.channel() as channel:
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        client_id = (await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
            api.CreateClientRequest(name="acme"))).client_id
        tenant = keys_api.CreateApiKeyRequest(role=keys_api.ROLE_TENANT, client_id=client_id)
        first = await keys.CreateApiKey(tenant)
        await keys.CreateApiKey(tenant)
        refused = await answer(keys.CreateApiKey(tenant))
        admins = [await answer(keys.CreateApiKey(keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN)))
                  for _ in range(3)]  # admins' keys belong to no client: not counted
        await keys.RevokeApiKey(keys_api.RevokeApiKeyRequest(key_id=first.api_key.key_id))
        after_revoking = await answer(keys.CreateApiKey(tenant))
    assert refused == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"client_id: client {client_id} has 2 valid keys, the most a client may have (2); revoke one"
                       " first")
    assert admins == [OK] * 3 and after_revoking == OK


def lookups(outcome: str) -> float:
    """Key checks that asked Postgres in this process, with this outcome."""
    return REGISTRY.get_sample_value("alerting_api_key_lookups_total", {"outcome": outcome}) or 0.0


async def who_am_i(service: RuleServiceUnderTest, key: str) -> tuple[grpc.StatusCode, str | None]:
    async with service.channel(api_key=key) as channel:
        return await answer(api_key_service_pb2_grpc.ApiKeyServiceStub(channel).WhoAmI(keys_api.WhoAmIRequest()))


async def test_a_peer_past_its_failed_authentications_is_refused_before_postgres_is_asked(
        stack_settings: StackSettings) -> None:
    # Three failures, then one more only every 100 s: none comes back during the test.
    async with rule_service(stack_settings, auth_failure_burst=3, auth_failures_per_second=0.01) as service:
        failures = [await who_am_i(service, new_key().key) for _ in range(3)]
        asked = lookups("unknown")
        throttled = [await who_am_i(service, key) for key in (new_key().key, service.admin_key, "")]
        not_asked = lookups("unknown") - asked
    unknown = (grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked API key")
    assert failures == [unknown] * 3 and not_asked == 0
    for code, details in throttled:  # a good key from the same address waits too
        wait = re.fullmatch(r"too many failed authentications from 127\.0\.0\.1; retry in ([0-9.]+) s", details or "")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and wait is not None, details
        assert 99 < float(wait[1]) <= 100


async def test_unknown_key_ids_neither_push_real_keys_out_of_the_cache_nor_ask_postgres_twice(
        stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings, api_key_cache_seconds=60.0, api_key_cache_entries=2,
                            unknown_key_cache_entries=2, auth_failure_burst=100) as service:
        async with service.channel() as channel:
            client_id = (await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
                api.CreateClientRequest(name="acme"))).client_id
            tenant = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
                keys_api.CreateApiKeyRequest(role=keys_api.ROLE_TENANT, client_id=client_id))
        assert (await who_am_i(service, tenant.key))[0] == grpc.StatusCode.OK  # now cached
        # Revoked behind the service's back: the tenant key keeps working exactly as long as
        # its check stays cached, which is what this test watches.
        await fetch(stack_settings, "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", tenant.api_key.key_id)
        flood = [await who_am_i(service, new_key().key) for _ in range(10)]
        still_cached = await who_am_i(service, tenant.key)
        repeated = new_key().key
        asked = lookups("unknown")
        repeats = [await who_am_i(service, repeated) for _ in range(5)]
        asked_for_repeats = lookups("unknown") - asked
    unknown = (grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked API key")
    assert flood == [unknown] * 10 and repeats == [unknown] * 5
    assert still_cached[0] == grpc.StatusCode.OK
    assert asked_for_repeats == 1


@pytest.mark.parametrize("peer, address", [
    ("ipv4:127.0.0.1:51234", "127.0.0.1"),
    ("ipv4:10.2.1.1:57284,127.0.0.1:57284", "10.2.1.1"),
    ("ipv6:[::1]:51234", "::/64"),
    ("ipv6:[2001:db8:1:2:aaaa::5]:443", "2001:db8:1:2::/64"),
    ("ipv6:[::ffff:10.1.2.3]:80", "10.1.2.3"),
    ("unix:/run/alerting.sock", "unix:/run/alerting.sock"),
    ("ipv4:not-an-address:1", "ipv4:not-an-address:1"),
])
def test_a_peer_is_limited_by_its_address_without_the_port(peer: str, address: str) -> None:
    assert peer_address(peer) == address


@given(st.ip_addresses(), st.integers(0, 65535), st.integers(0, 65535))
def test_new_connections_from_one_address_are_one_peer(address: IPv4Address | IPv6Address, port: int,
                                                       other_port: int) -> None:
    def peer(port: int) -> str:
        return f"ipv4:{address}:{port}" if isinstance(address, IPv4Address) else f"ipv6:[{address}]:{port}"

    assert peer_address(peer(port)) == peer_address(peer(other_port)) != peer(port)
