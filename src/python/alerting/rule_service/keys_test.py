"""API keys against a real rule-service: shown once and stored as a hash, revoked on every
instance within seconds, the bootstrap admin key, the last admin key, and who changed what."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest

from alerting.common import topics
from alerting.common.settings import Settings
from alerting.rule_service.access import parse_key
from alerting.testsupport.services import fetch, read, rule_service
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import api_key_service_pb2_grpc, events_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        created = await keys.CreateApiKey(keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN, name="ci"))
        listed = await keys.ListApiKeys(keys_api.ListApiKeysRequest())
    key_id, secret = parse_key(created.key)
    assert created.api_key.key_id == key_id and created.api_key.created_by == parse_key(service.admin_key)[0]
    assert created.key not in str(listed) and secret not in str(listed)
    [row] = await fetch(stack_settings, "SELECT api_keys::text AS everything, secret_hash FROM api_keys"
                                        " WHERE key_id = $1", key_id)
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in row["everything"]


async def test_a_revoked_key_is_refused_by_every_instance_within_seconds(stack_settings: Settings) -> None:
    async with rule_service(stack_settings, api_key_cache_seconds=1.0) as first, \
            rule_service(stack_settings, api_key_cache_seconds=1.0) as second:
        async with first.channel() as channel:
            client = await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
                api.CreateClientRequest(name="acme"))
            tenant = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
                keys_api.CreateApiKeyRequest(role=keys_api.ROLE_TENANT, client_id=client.client_id))
        async with second.channel(api_key=tenant.key) as tenant_channel:
            rules = rule_service_pb2_grpc.RuleServiceStub(tenant_channel)
            await rules.ListRules(api.ListRulesRequest())  # accepted, and now in the second's cache
            async with first.channel() as channel:
                await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).RevokeApiKey(
                    keys_api.RevokeApiKeyRequest(key_id=tenant.api_key.key_id))
            revoked_at = asyncio.get_running_loop().time()
            while True:
                try:
                    await rules.ListRules(api.ListRulesRequest())
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                    break
                assert asyncio.get_running_loop().time() - revoked_at < 10, "the revoked key still works"
                await asyncio.sleep(0.05)
            assert await code_of(rules.ListRules(api.ListRulesRequest())) == grpc.StatusCode.UNAUTHENTICATED


async def test_the_bootstrap_key_is_stored_once_and_a_revoked_one_stays_revoked(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        me = await keys.WhoAmI(keys_api.WhoAmIRequest())
        bootstrap = service.admin_key
        # The last valid admin key cannot go: nobody could manage the platform after it.
        assert await code_of(keys.RevokeApiKey(keys_api.RevokeApiKeyRequest(key_id=me.key_id))) == \
            grpc.StatusCode.FAILED_PRECONDITION
        other_admin = await keys.CreateApiKey(keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN))
        revoked = await keys.RevokeApiKey(keys_api.RevokeApiKeyRequest(key_id=me.key_id))
    assert (me.role, me.created_by, revoked.HasField("revoked_at")) == (keys_api.ROLE_ADMIN, "bootstrap", True)
    # Started again with the same bootstrap key: it is not stored again, so it stays revoked.
    async with rule_service(stack_settings, bootstrap_admin_key=other_admin.key) as again:
        async with again.channel(api_key=bootstrap) as channel:
            assert await code_of(api_key_service_pb2_grpc.ApiKeyServiceStub(channel).WhoAmI(
                keys_api.WhoAmIRequest())) == grpc.StatusCode.UNAUTHENTICATED
    [row] = await fetch(stack_settings, "SELECT count(*) AS n FROM api_keys WHERE key_id = $1", me.key_id)
    assert row["n"] == 1


async def test_every_change_records_the_key_that_made_it(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        async with service.channel() as channel:
            client = await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
                api.CreateClientRequest(name="acme"))
            tenant = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
                keys_api.CreateApiKeyRequest(role=keys_api.ROLE_TENANT, client_id=client.client_id))
        async with service.channel(api_key=tenant.key) as channel:
            rules = rule_service_pb2_grpc.RuleServiceStub(channel)
            rule = await rules.CreateRule(api.CreateRuleRequest(
                client_id=client.client_id, severity="HIGH", source="db", name="*", emails=["ops@x.io"]))
            await rules.DeleteRule(api.DeleteRuleRequest(rule_id=rule.rule_id))
        records = await read(stack_settings, topics.RULE_CHANGED, 2)
    admin_id, tenant_id = parse_key(service.admin_key)[0], tenant.api_key.key_id
    assert (client.updated_by, rule.updated_by) == (admin_id, tenant_id)
    changes = [events_pb2.RuleChanged.FromString(record.value) for record in records]
    assert [(change.op, change.changed_by, change.rule.updated_by) for change in changes] == [
        (events_pb2.RuleChanged.OP_UPSERT, tenant_id, tenant_id), (events_pb2.RuleChanged.OP_DELETE, tenant_id, "")]


async def test_a_malformed_bootstrap_key_stops_the_start_with_a_clear_error(stack_settings: Settings) -> None:
    with pytest.raises(ValueError, match="ALERTING_BOOTSTRAP_ADMIN_KEY: not an API key"):
        async with rule_service(stack_settings, bootstrap_admin_key="admin"):
            pass
