"""Every RPC of the rule-service's APIs × every kind of credential → the status code it
must answer, against a real rule-service over TLS with real keys in Postgres.

Each cell of the matrix runs in a world of its own (two tenants, their keys, a rule, a key,
a FAILED notification, a notification policy and a silence of the first tenant), so that a
call that changes something cannot decide the outcome of another cell.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from alerting.producer.alerts import build_alert
from alerting.rule_service.auth import RecentAnswers
from alerting.testsupport.calls import answer
from alerting.testsupport.services import RuleServiceUnderTest, fetch, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    dead_letter_service_pb2,
    dead_letter_service_pb2_grpc,
    notification_policy_service_pb2,
    notification_policy_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    receiver_service_pb2,
    receiver_service_pb2_grpc,
    rule_pb2,
    rule_service_pb2,
    rule_service_pb2_grpc,
    silence_service_pb2,
    silence_service_pb2_grpc,
)
from alerting.v1 import rule_service_pb2 as rules_api

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
CREDENTIALS = ("none", "malformed", "unknown", "revoked", "own_tenant", "other_tenant", "admin")


@dataclass(frozen=True)
class World:
    """Two tenants: `own` (client A) and `other` (client B), with A's things to act on (among
    them the grant of the source `db`)."""

    client_a: str
    rule_a: rule_pb2.Rule
    key_id_a: str  # a second TENANT key of A, to list and revoke
    notification_a: str  # FAILED, so that it can be retried
    silence_a: str  # active, so that it can be expired
    receiver_a: str  # a webhook no rule names, so that it can be deleted
    keys: dict[str, str]  # credential kind → the key presented ("" presents none)


async def make_world(service: RuleServiceUnderTest) -> World:
    async with service.channel() as channel:
        rules = rule_service_pb2_grpc.RuleServiceStub(channel)
        keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        client_a = (await rules.CreateClient(rules_api.CreateClientRequest(name="tenant a"))).client_id
        client_b = (await rules.CreateClient(rules_api.CreateClientRequest(name="tenant b"))).client_id
        rule_a = await rules.CreateRule(rules_api.CreateRuleRequest(
            client_id=client_a, severity="HIGH", source="db", name="*", emails=["ops@a.io"]))
        await rules.CreateSourceGrant(rules_api.CreateSourceGrantRequest(client_id=client_a, source="db"))

        async def tenant_key(client_id: str) -> api_key_service_pb2.CreateApiKeyResponse:
            return await keys.CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
                role=api_key_service_pb2.ROLE_TENANT, client_id=client_id, name="matrix"))

        own, other, second, revoked = (await tenant_key(client_a), await tenant_key(client_b),
                                       await tenant_key(client_a), await tenant_key(client_a))
        await keys.RevokeApiKey(api_key_service_pb2.RevokeApiKeyRequest(key_id=revoked.api_key.key_id))
        await policy_stub(channel).SetNotificationPolicy(notification_policy_service_pb2.SetNotificationPolicyRequest(
            client_id=client_a, group_wait_seconds=10, group_interval_seconds=300))
        silence_a = await silence_stub(channel).CreateSilence(silence_request(client_a))
        receiver_a = await receiver_stub(channel).CreateReceiver(receiver_request(client_a))
    [row] = await fetch(
        service.settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status, failure, attempts)"
        " VALUES ($1, $2, $3, $4, $5, 'FAILED', 'refused', 1) RETURNING notification_id::text",
        client_a, uuid.uuid4().hex, [rule_a.rule_id], ["ops@a.io"],
        build_alert("HIGH", "db", "disk").SerializeToString())
    unknown_secret = own.key.rpartition(".")[0] + "." + "A" * 43  # a real key id, a wrong secret
    return World(client_a, rule_a, second.api_key.key_id, str(row["notification_id"]), silence_a.silence_id,
                 receiver_a.receiver.receiver_id, {
        "none": "", "malformed": "not-a-key", "unknown": unknown_secret, "revoked": revoked.key,
        "own_tenant": own.key, "other_tenant": other.key, "admin": service.admin_key,
    })


Call = Callable[[grpc.aio.Channel, World], Awaitable[Any]]


def rule_stub(channel: grpc.aio.Channel) -> rule_service_pb2_grpc.RuleServiceAsyncStub:
    return rule_service_pb2_grpc.RuleServiceStub(channel)


def key_stub(channel: grpc.aio.Channel) -> api_key_service_pb2_grpc.ApiKeyServiceAsyncStub:
    return api_key_service_pb2_grpc.ApiKeyServiceStub(channel)


def notification_stub(channel: grpc.aio.Channel) -> notification_service_pb2_grpc.NotificationServiceAsyncStub:
    return notification_service_pb2_grpc.NotificationServiceStub(channel)


def dead_letter_stub(channel: grpc.aio.Channel) -> dead_letter_service_pb2_grpc.DeadLetterServiceAsyncStub:
    return dead_letter_service_pb2_grpc.DeadLetterServiceStub(channel)


def policy_stub(channel: grpc.aio.Channel
                ) -> notification_policy_service_pb2_grpc.NotificationPolicyServiceAsyncStub:
    return notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(channel)


def silence_stub(channel: grpc.aio.Channel) -> silence_service_pb2_grpc.SilenceServiceAsyncStub:
    return silence_service_pb2_grpc.SilenceServiceStub(channel)


def receiver_stub(channel: grpc.aio.Channel) -> receiver_service_pb2_grpc.ReceiverServiceAsyncStub:
    return receiver_service_pb2_grpc.ReceiverServiceStub(channel)


def receiver_request(client_id: str) -> receiver_service_pb2.CreateReceiverRequest:
    return receiver_service_pb2.CreateReceiverRequest(client_id=client_id, name=f"hook {uuid.uuid4()}",
                                                      kind=receiver_service_pb2.RECEIVER_KIND_WEBHOOK,
                                                      url="http://127.0.0.1:9/hook")


def silence_request(client_id: str) -> silence_service_pb2.CreateSilenceRequest:
    request = silence_service_pb2.CreateSilenceRequest(client_id=client_id, severity="*", source="db", name="*",
                                                       comment="maintenance")
    request.duration.FromTimedelta(timedelta(hours=1))
    return request


def rule_request(world: World) -> rules_api.UpdateRuleRequest:
    return rules_api.UpdateRuleRequest(rule_id=world.rule_a.rule_id, severity="LOW", source="db", name="*",
                                       emails=["ops@a.io"], enabled=True, expected_version=world.rule_a.version)


# RPC → (the call, made on A's things, and the status for a TENANT key of A, of B, and an ADMIN key).
# Every call with no key, a malformed, an unknown or a revoked key is UNAUTHENTICATED.
MATRIX: dict[str, tuple[Call, grpc.StatusCode, grpc.StatusCode, grpc.StatusCode]] = {
    "RuleService/CreateClient": (
        lambda c, w: rule_stub(c).CreateClient(rules_api.CreateClientRequest(name="new")), DENIED, DENIED, OK),
    "RuleService/GetClient": (
        lambda c, w: rule_stub(c).GetClient(rules_api.GetClientRequest(client_id=w.client_a)), OK, NOT_FOUND, OK),
    "RuleService/ListClients": (lambda c, w: rule_stub(c).ListClients(rules_api.ListClientsRequest()), OK, OK, OK),
    "RuleService/UpdateClient": (
        lambda c, w: rule_stub(c).UpdateClient(rules_api.UpdateClientRequest(
            client_id=w.client_a, name="renamed", expected_version=1)), DENIED, NOT_FOUND, OK),
    "RuleService/DeleteClient": (
        lambda c, w: rule_stub(c).DeleteClient(rules_api.DeleteClientRequest(client_id=w.client_a)),
        DENIED, NOT_FOUND, OK),
    "RuleService/CreateRule": (
        lambda c, w: rule_stub(c).CreateRule(rules_api.CreateRuleRequest(
            client_id=w.client_a, severity="LOW", source="api", name="*", emails=["dev@a.io"])), OK, NOT_FOUND, OK),
    "RuleService/GetRule": (
        lambda c, w: rule_stub(c).GetRule(rules_api.GetRuleRequest(rule_id=w.rule_a.rule_id)), OK, NOT_FOUND, OK),
    "RuleService/ListRules": (
        lambda c, w: rule_stub(c).ListRules(rules_api.ListRulesRequest(client_id=w.client_a)), OK, NOT_FOUND, OK),
    "RuleService/UpdateRule": (lambda c, w: rule_stub(c).UpdateRule(rule_request(w)), OK, NOT_FOUND, OK),
    "RuleService/DeleteRule": (
        lambda c, w: rule_stub(c).DeleteRule(rules_api.DeleteRuleRequest(rule_id=w.rule_a.rule_id)),
        OK, NOT_FOUND, OK),
    # Sources are granted by admins only: a tenant granting itself sources reads anyone's alerts.
    "RuleService/CreateSourceGrant": (
        lambda c, w: rule_stub(c).CreateSourceGrant(rules_api.CreateSourceGrantRequest(
            client_id=w.client_a, source="payments")), DENIED, NOT_FOUND, OK),
    "RuleService/ListSourceGrants": (
        lambda c, w: rule_stub(c).ListSourceGrants(rules_api.ListSourceGrantsRequest(client_id=w.client_a)),
        OK, NOT_FOUND, OK),
    "RuleService/DeleteSourceGrant": (
        lambda c, w: rule_stub(c).DeleteSourceGrant(rules_api.DeleteSourceGrantRequest(
            client_id=w.client_a, source="db")), DENIED, NOT_FOUND, OK),
    # Key creation is an admin's unless tenant self-service is on (test_tenant_self_service_...).
    "ApiKeyService/CreateApiKey(TENANT)": (
        lambda c, w: key_stub(c).CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
            role=api_key_service_pb2.ROLE_TENANT, client_id=w.client_a)), DENIED, NOT_FOUND, OK),
    "ApiKeyService/CreateApiKey(ADMIN)": (
        lambda c, w: key_stub(c).CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
            role=api_key_service_pb2.ROLE_ADMIN)), DENIED, DENIED, OK),
    "ApiKeyService/ListApiKeys": (
        lambda c, w: key_stub(c).ListApiKeys(api_key_service_pb2.ListApiKeysRequest(client_id=w.client_a)),
        OK, NOT_FOUND, OK),
    "ApiKeyService/RevokeApiKey": (
        lambda c, w: key_stub(c).RevokeApiKey(api_key_service_pb2.RevokeApiKeyRequest(key_id=w.key_id_a)),
        OK, NOT_FOUND, OK),
    "ApiKeyService/WhoAmI": (lambda c, w: key_stub(c).WhoAmI(api_key_service_pb2.WhoAmIRequest()), OK, OK, OK),
    "NotificationService/ListNotifications": (
        lambda c, w: notification_stub(c).ListNotifications(
            notification_service_pb2.ListNotificationsRequest(client_id=w.client_a)), OK, NOT_FOUND, OK),
    "NotificationService/GetNotification": (
        lambda c, w: notification_stub(c).GetNotification(
            notification_service_pb2.GetNotificationRequest(notification_id=w.notification_a)), OK, NOT_FOUND, OK),
    "NotificationService/RetryNotification": (
        lambda c, w: notification_stub(c).RetryNotification(
            notification_service_pb2.RetryNotificationRequest(notification_id=w.notification_a)), OK, NOT_FOUND, OK),
    "DeadLetterService/ListDeadLetters": (
        lambda c, w: dead_letter_stub(c).ListDeadLetters(
            dead_letter_service_pb2.ListDeadLettersRequest(topic="alerts.new")), DENIED, DENIED, OK),
    # The admin gets past authorization to the request itself: offset 0 of an empty log.
    "DeadLetterService/ReplayDeadLetters": (
        lambda c, w: dead_letter_stub(c).ReplayDeadLetters(
            dead_letter_service_pb2.ReplayDeadLettersRequest(topic="alerts.new", offsets=[0])),
        DENIED, DENIED, grpc.StatusCode.NOT_FOUND),
    # A tenant shapes and mutes its own notifications; an admin any client's.
    "NotificationPolicyService/GetNotificationPolicy": (
        lambda c, w: policy_stub(c).GetNotificationPolicy(
            notification_policy_service_pb2.GetNotificationPolicyRequest(client_id=w.client_a)), OK, NOT_FOUND, OK),
    "NotificationPolicyService/SetNotificationPolicy": (
        lambda c, w: policy_stub(c).SetNotificationPolicy(notification_policy_service_pb2.SetNotificationPolicyRequest(
            client_id=w.client_a, group_interval_seconds=60, expected_version=1)), OK, NOT_FOUND, OK),
    "NotificationPolicyService/DeleteNotificationPolicy": (
        lambda c, w: policy_stub(c).DeleteNotificationPolicy(
            notification_policy_service_pb2.DeleteNotificationPolicyRequest(client_id=w.client_a)), OK, NOT_FOUND, OK),
    "SilenceService/CreateSilence": (
        lambda c, w: silence_stub(c).CreateSilence(silence_request(w.client_a)), OK, NOT_FOUND, OK),
    "SilenceService/GetSilence": (
        lambda c, w: silence_stub(c).GetSilence(silence_service_pb2.GetSilenceRequest(silence_id=w.silence_a)),
        OK, NOT_FOUND, OK),
    "SilenceService/ListSilences": (
        lambda c, w: silence_stub(c).ListSilences(silence_service_pb2.ListSilencesRequest(client_id=w.client_a)),
        OK, NOT_FOUND, OK),
    "SilenceService/ExpireSilence": (
        lambda c, w: silence_stub(c).ExpireSilence(silence_service_pb2.ExpireSilenceRequest(silence_id=w.silence_a)),
        OK, NOT_FOUND, OK),
    "ReceiverService/CreateReceiver": (
        lambda c, w: receiver_stub(c).CreateReceiver(receiver_request(w.client_a)), OK, NOT_FOUND, OK),
    "ReceiverService/GetReceiver": (
        lambda c, w: receiver_stub(c).GetReceiver(receiver_service_pb2.GetReceiverRequest(receiver_id=w.receiver_a)),
        OK, NOT_FOUND, OK),
    "ReceiverService/ListReceivers": (
        lambda c, w: receiver_stub(c).ListReceivers(receiver_service_pb2.ListReceiversRequest(client_id=w.client_a)),
        OK, NOT_FOUND, OK),
    "ReceiverService/RotateReceiverSecret": (
        lambda c, w: receiver_stub(c).RotateReceiverSecret(
            receiver_service_pb2.RotateReceiverSecretRequest(receiver_id=w.receiver_a)), OK, NOT_FOUND, OK),
    "ReceiverService/UpdateReceiver": (
        lambda c, w: receiver_stub(c).UpdateReceiver(receiver_service_pb2.UpdateReceiverRequest(
            receiver_id=w.receiver_a, url="http://127.0.0.1:9/moved")), OK, NOT_FOUND, OK),
    "ReceiverService/DeleteReceiver": (
        lambda c, w: receiver_stub(c).DeleteReceiver(
            receiver_service_pb2.DeleteReceiverRequest(receiver_id=w.receiver_a)), OK, NOT_FOUND, OK),
}


def test_the_matrix_covers_every_rpc_of_every_service() -> None:
    services = (rule_service_pb2, api_key_service_pb2, notification_service_pb2, dead_letter_service_pb2,
                notification_policy_service_pb2, silence_service_pb2, receiver_service_pb2)
    rpcs = {f"{service.name}/{method.name}" for module in services
            for service in module.DESCRIPTOR.services_by_name.values() for method in service.methods}
    assert {name.partition("(")[0] for name in MATRIX} == rpcs


async def status(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return OK


@pytest.mark.parametrize("rpc", sorted(MATRIX))
async def test_each_rpc_answers_each_credential_as_its_role_allows(stack_settings: StackSettings, rpc: str) -> None:
    call, own_tenant, other_tenant, admin = MATRIX[rpc]
    expected = {"none": UNAUTHENTICATED, "malformed": UNAUTHENTICATED, "unknown": UNAUTHENTICATED,
                "revoked": UNAUTHENTICATED, "own_tenant": own_tenant, "other_tenant": other_tenant, "admin": admin}
    answered: dict[str, grpc.StatusCode] = {}
    async with rule_service(stack_settings) as service:
        for credential in CREDENTIALS:
            world = await make_world(service)
            async with service.channel(api_key=world.keys[credential]) as channel:
                answered[credential] = await status(call(channel, world))
    assert answered == expected


async def test_lists_show_a_tenant_only_its_own_client_rules_grants_silences_and_keys(
    stack_settings: StackSettings,
) -> None:
    async with rule_service(stack_settings) as service:
        world = await make_world(service)
        async with service.channel(api_key=world.keys["other_tenant"]) as channel:
            clients = await rule_stub(channel).ListClients(rules_api.ListClientsRequest())
            rules = await rule_stub(channel).ListRules(rules_api.ListRulesRequest())
            grants = await rule_stub(channel).ListSourceGrants(rules_api.ListSourceGrantsRequest())
            silences = await silence_stub(channel).ListSilences(
                silence_service_pb2.ListSilencesRequest(include_expired=True))
            keys = await key_stub(channel).ListApiKeys(api_key_service_pb2.ListApiKeysRequest(include_revoked=True))
            me = await key_stub(channel).WhoAmI(api_key_service_pb2.WhoAmIRequest())
        async with service.channel(api_key=world.keys["own_tenant"]) as channel:
            own_rules = await rule_stub(channel).ListRules(rules_api.ListRulesRequest())
            own_grants = await rule_stub(channel).ListSourceGrants(rules_api.ListSourceGrantsRequest())
            own_silences = await silence_stub(channel).ListSilences(silence_service_pb2.ListSilencesRequest())
        async with service.channel() as channel:
            every_client = await rule_stub(channel).ListClients(rules_api.ListClientsRequest())
    assert [client.client_id for client in clients.clients] == [me.client_id]
    assert me.client_id != world.client_a and list(rules.rules) == [] and list(grants.grants) == []
    assert list(silences.silences) == []
    assert [silence.silence_id for silence in own_silences.silences] == [world.silence_a]
    assert [(grant.client_id, grant.source, grant.prefix) for grant in own_grants.grants] == [
        (world.client_a, "db", False)]
    assert [key.key_id for key in keys.api_keys] == [me.key_id]
    assert [rule.rule_id for rule in own_rules.rules] == [world.rule_a.rule_id]
    assert {world.client_a, me.client_id} <= {client.client_id for client in every_client.clients}


async def test_a_call_with_two_authorization_values_is_refused_whichever_comes_first(
        stack_settings: StackSettings) -> None:
    two = "2 authorization metadata values; send exactly one, `authorization: Bearer <key>`"
    async with rule_service(stack_settings) as service:
        world = await make_world(service)
        admin, tenant = world.keys["admin"], world.keys["own_tenant"]
        async with service.channel(api_key="") as channel:
            answers = [await answer(rule_stub(channel).CreateClient(
                rules_api.CreateClientRequest(name="smuggled"),
                metadata=(("authorization", f"Bearer {first}"), ("authorization", f"Bearer {second}"))))
                for first, second in ((admin, tenant), (tenant, admin), (admin, admin))]
        async with service.channel() as channel:
            clients = await rule_stub(channel).ListClients(rules_api.ListClientsRequest())
    assert answers == [(UNAUTHENTICATED, two)] * 3
    assert "smuggled" not in {client.name for client in clients.clients}


async def test_tenant_self_service_lets_a_tenant_key_create_keys_that_expire_with_it(
        stack_settings: StackSettings) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    async with rule_service(stack_settings, tenant_key_self_service=True) as service:
        async with service.channel() as channel:
            client_id = (await rule_stub(channel).CreateClient(rules_api.CreateClientRequest(name="a"))).client_id
            request = api_key_service_pb2.CreateApiKeyRequest(role=api_key_service_pb2.ROLE_TENANT, client_id=client_id)
            request.expires_at.FromDatetime(expires)
            maker = await key_stub(channel).CreateApiKey(request)
        async with service.channel(api_key=maker.key) as channel:
            made = await key_stub(channel).CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
                role=api_key_service_pb2.ROLE_TENANT, client_id=client_id, name="made by a tenant"))
            request.expires_at.FromDatetime(expires + timedelta(seconds=1))
            longer = await answer(key_stub(channel).CreateApiKey(request))
            admin_key = await answer(key_stub(channel).CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
                role=api_key_service_pb2.ROLE_ADMIN)))
    assert (made.api_key.created_by, made.api_key.expires_at.ToDatetime(UTC)) == (maker.api_key.key_id, expires)
    assert longer == (grpc.StatusCode.INVALID_ARGUMENT, "expires_at: a key made by a TENANT key expires no later"
                                                        f" than that key ({expires.isoformat()})")
    assert admin_key == (DENIED, f"creating an ADMIN key needs an ADMIN key; this is a TENANT key"
                                 f" ({maker.api_key.key_id})")


async def test_without_self_service_a_tenant_key_cannot_create_keys(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        world = await make_world(service)
        async with service.channel(api_key=world.keys["own_tenant"]) as channel:
            refused = await answer(key_stub(channel).CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
                role=api_key_service_pb2.ROLE_TENANT, client_id=world.client_a)))
            me = await key_stub(channel).WhoAmI(api_key_service_pb2.WhoAmIRequest())
    assert refused == (DENIED, f"creating a key needs an ADMIN key; this is a TENANT key ({me.key_id})")


def test_recent_answers_last_their_ttl_and_the_least_recently_used_go_first() -> None:
    now = [0.0]
    answers: RecentAnswers[str] = RecentAnswers(ttl=2.0, max_entries=2, clock=lambda: now[0])
    answers.put("a", "A")
    answers.put("b", "B")
    assert answers.get("a") == "A"  # now b is the least recently used
    answers.put("c", "C")
    assert (answers.get("a"), answers.get("b"), answers.get("c")) == ("A", None, "C")
    now[0] = 2.0
    assert answers.get("a") is None
    answers.put("a", "A2")
    answers.forget("c")
    assert (answers.get("a"), answers.get("c")) == ("A2", None)
