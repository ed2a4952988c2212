"""API keys against a real rule-service: shown once and stored as a hash, revoked on every
instance within seconds, the bootstrap admin key, the last admin key, and who changed what."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from alerting.common import topics
from alerting.rule_service.access import parse_key
from alerting.testsupport.services import fetch, read, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import api_key_service_pb2_grpc, events_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api


async def code_of(call: object) -> grpc.StatusCode:
    return (await error_of(call))[0]


async def error_of(call: object) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details()


def expiring(request: keys_api.CreateApiKeyRequest, at: datetime) -> keys_api.CreateApiKeyRequest:
    request.expires_at.FromDatetime(at)
    return request


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(stack_settings: StackSettings) -> None:
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


async def test_a_revoked_key_is_refused_by_every_instance_within_seconds(stack_settings: StackSettings) -> None:
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


async def test_the_bootstrap_key_is_stored_once_and_a_revoked_one_stays_revoked(stack_settings: StackSettings) -> None:
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


async def test_every_change_records_the_key_that_made_it(stack_settings: StackSettings) -> None:
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


async def test_a_malformed_bootstrap_key_stops_the_start_with_a_clear_error(stack_settings: StackSettings) -> None:
    with pytest.raises(ValueError, match="ALERTING_BOOTSTRAP_ADMIN_KEY: not an API key"):
        async with rule_service(stack_settings, bootstrap_admin_key="admin"):
            pass


async def test_a_key_works_until_it_expires_on_every_call_however_recently_checked(
    stack_settings: StackSettings,
) -> None:
    # A cache of a minute: expiry is checked on every call, not when the cache is refreshed.
    async with rule_service(stack_settings, api_key_cache_seconds=60.0) as service:
        async with service.channel() as channel:
            keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
            client = await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
                api.CreateClientRequest(name="acme"))
            expires = datetime.now(UTC) + timedelta(seconds=3)
            tenant = await keys.CreateApiKey(expiring(keys_api.CreateApiKeyRequest(
                role=keys_api.ROLE_TENANT, client_id=client.client_id, name="short-lived"), expires))
            forever = await keys.CreateApiKey(keys_api.CreateApiKeyRequest(
                role=keys_api.ROLE_TENANT, client_id=client.client_id))
        async with service.channel(api_key=tenant.key) as channel:
            me = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).WhoAmI(keys_api.WhoAmIRequest())
            await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
            refused = await error_of(api_key_service_pb2_grpc.ApiKeyServiceStub(channel).WhoAmI(
                keys_api.WhoAmIRequest()))
        async with service.channel() as channel:
            keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
            valid = await keys.ListApiKeys(keys_api.ListApiKeysRequest(client_id=client.client_id))
            every = await keys.ListApiKeys(keys_api.ListApiKeysRequest(client_id=client.client_id,
                                                                        include_revoked=True))
    assert me.expires_at.ToDatetime(UTC) == expires and not forever.api_key.HasField("expires_at")
    assert refused == (grpc.StatusCode.UNAUTHENTICATED,
                       f"API key {tenant.api_key.key_id} expired at {expires.isoformat()}")
    assert [key.key_id for key in valid.api_keys] == [forever.api_key.key_id]
    assert sorted(key.key_id for key in every.api_keys) == sorted([tenant.api_key.key_id, forever.api_key.key_id])


@pytest.mark.parametrize("name, problem", [
    ("ci\x00", "name: contains the control character U+0000"),
    ("ci\u202egnp.exe", "name: contains the format character U+202E"),
    ("c\u200bi", "name: contains the format character U+200B"),
])
async def test_a_key_name_with_control_or_format_characters_is_invalid(
        stack_settings: StackSettings, name: str, problem: str) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        refused = await error_of(keys.CreateApiKey(keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN, name=name)))
        listed = await keys.ListApiKeys(keys_api.ListApiKeysRequest())
    assert refused == (grpc.StatusCode.INVALID_ARGUMENT, problem)
    assert [key.created_by for key in listed.api_keys] == ["bootstrap"]


async def test_an_expiry_not_in_the_future_is_invalid(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        past = keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN)
        past.expires_at.seconds = 1_000_000_000
        far = keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN)
        far.expires_at.seconds = 2**40
        answers = [await error_of(keys.CreateApiKey(request)) for request in (past, far)]
    assert answers == [
        (grpc.StatusCode.INVALID_ARGUMENT, "expires_at: 2001-09-09T01:46:40+00:00 is not in the future"),
        (grpc.StatusCode.INVALID_ARGUMENT, f"expires_at: {2**40} seconds since the epoch is after 9999-01-01"),
    ]


async def test_an_expired_admin_key_does_not_count_as_the_last_valid_one(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service, service.channel() as channel:
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        me = await keys.WhoAmI(keys_api.WhoAmIRequest())
        other = await keys.CreateApiKey(expiring(keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN),
                                                 datetime.now(UTC) + timedelta(seconds=1)))
        await asyncio.sleep(1.1)
        # The other admin key expired: this one is the last that works, so it stays.
        refused = await error_of(keys.RevokeApiKey(keys_api.RevokeApiKeyRequest(key_id=me.key_id)))
        revoked_expired = await keys.RevokeApiKey(keys_api.RevokeApiKeyRequest(key_id=other.api_key.key_id))
    assert refused == (grpc.StatusCode.FAILED_PRECONDITION,
                       f"key_id: {me.key_id} is the last valid ADMIN key; create another before revoking it")
    assert revoked_expired.HasField("revoked_at")
