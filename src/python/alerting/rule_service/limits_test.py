"""Quotas and limits of a real rule-service: rules per client, the size of a request, and
the per-tenant rate limit, each configurable."""

from __future__ import annotations

import grpc
import pytest

from alerting.common.settings import Settings
from alerting.testsupport.services import rule_service
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import api_key_service_pb2_grpc, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api


def rule(client_id: str, source: str) -> api.CreateRuleRequest:
    return api.CreateRuleRequest(client_id=client_id, severity="HIGH", source=source, name="*", emails=["ops@x.io"])


async def error_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_client_may_have_at_most_max_rules_per_client(stack_settings: Settings) -> None:
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


async def test_a_request_larger_than_max_request_bytes_is_refused(stack_settings: Settings) -> None:
    async with rule_service(stack_settings, max_request_bytes=4096) as service, service.channel() as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        emails = [f"user{number}@example.com" for number in range(400)]  # about 9 KB
        refused = await error_of(stub.CreateRule(api.CreateRuleRequest(
            client_id=client.client_id, severity="HIGH", source="db", name="*", emails=emails)))
        listed = await stub.ListRules(api.ListRulesRequest(client_id=client.client_id))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and list(listed.rules) == []


async def test_a_tenant_past_its_rate_limit_is_refused_and_no_one_else_is(stack_settings: Settings) -> None:
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
