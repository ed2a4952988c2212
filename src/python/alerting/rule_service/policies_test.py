"""The NotificationPolicyService over real gRPC on the real stack: the default, setting and
changing a policy with its version, resetting it, what each request refuses, and tenants
kept to their own client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from alerting.testsupport.calls import answer, new_client, tenant_key
from alerting.testsupport.services import fetch, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import notification_policy_service_pb2 as api
from alerting.v1 import (
    notification_policy_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
    silence_service_pb2,
    silence_service_pb2_grpc,
)

NOT_FOUND = grpc.StatusCode.NOT_FOUND
STALE = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def stub(channel: grpc.aio.Channel) -> notification_policy_service_pb2_grpc.NotificationPolicyServiceAsyncStub:
    return notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(channel)


def fields(policy: api.NotificationPolicy) -> tuple[object, ...]:
    return (policy.client_id, list(policy.group_by), policy.group_wait_seconds, policy.group_interval_seconds,
            policy.max_emails_per_hour, policy.version, policy.is_default, policy.updated_by)


async def test_a_client_has_the_default_until_it_sets_a_policy_and_changes_it_by_version(
        stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        key = await tenant_key(service, client_id)
        by = key.api_key.key_id
        async with service.channel(api_key=key.key) as channel:
            default = await stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=client_id))
            started = datetime.now(UTC)
            first = await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=client_id, group_by=["rule", "source", "source"], group_wait_seconds=30,
                group_interval_seconds=600, expected_version=0))
            again = await answer(stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=client_id, group_interval_seconds=60, expected_version=0)))
            second = await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=client_id, group_wait_seconds=0, group_interval_seconds=1, max_emails_per_hour=20,
                expected_version=1))
            stale = await answer(stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=client_id, group_interval_seconds=60, expected_version=1)))
            read = await stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=client_id))
            stale_delete = await answer(stub(channel).DeleteNotificationPolicy(
                api.DeleteNotificationPolicyRequest(client_id=client_id, expected_version=1)))
            await stub(channel).DeleteNotificationPolicy(
                api.DeleteNotificationPolicyRequest(client_id=client_id, expected_version=2))
            reset = await stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=client_id))
            none_left = await answer(stub(channel).DeleteNotificationPolicy(
                api.DeleteNotificationPolicyRequest(client_id=client_id)))
            after_reset = await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=client_id, group_interval_seconds=120, expected_version=0))
    assert fields(default) == (client_id, [], 10, 300, 0, 0, True, "")
    assert not default.HasField("created_at") and not default.HasField("updated_at")
    assert fields(first) == (client_id, ["source", "rule"], 30, 600, 0, 1, False, by)
    assert started - timedelta(seconds=5) < first.created_at.ToDatetime(UTC) == first.updated_at.ToDatetime(UTC)
    assert again == (STALE, "expected_version: is 0, the current version is 1")
    assert fields(second) == (client_id, [], 0, 1, 20, 2, False, by)
    assert second.created_at == first.created_at and second.updated_at.ToDatetime(UTC) >= first.updated_at.ToDatetime(
        UTC)
    assert stale == (STALE, "expected_version: is 1, the current version is 2")
    assert read == second
    assert stale_delete == (STALE, "expected_version: is 1, the current version is 2")
    assert reset == default
    assert none_left == (NOT_FOUND, f"client_id: client {client_id} has no notification policy of its own")
    assert fields(after_reset) == (client_id, [], 0, 120, 0, 1, False, by)


async def test_the_table_holds_what_the_sender_reads(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        acme, globex = await new_client(service, "acme"), await new_client(service, "globex")
        async with service.channel() as channel:
            await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=acme, group_by=["name", "severity"], group_wait_seconds=5, group_interval_seconds=60))
            await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=globex, group_interval_seconds=60, max_emails_per_hour=7))
    rows = await fetch(stack_settings, "SELECT client_id::text, group_by, group_wait_seconds, group_interval_seconds,"
                                       " max_emails_per_hour, version FROM notification_policies"
                                       " ORDER BY max_emails_per_hour NULLS FIRST")
    assert [tuple(row) for row in rows] == [
        (acme, ["severity", "name"], 5, 60, None, 1),  # 0 is NULL: the platform's default
        (globex, [], 0, 60, 7, 1),
    ]


async def test_a_tenant_reaches_its_own_policy_only_and_other_ids_are_not_found(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        own, other = await new_client(service, "own"), await new_client(service, "other")
        key = await tenant_key(service, own)
        async with service.channel() as channel:
            await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=other, group_interval_seconds=60))
        missing = str(uuid.uuid4())
        async with service.channel(api_key=key.key) as channel:
            answers = [
                await answer(stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=other))),
                await answer(stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                    client_id=other, group_interval_seconds=60, expected_version=1))),
                await answer(stub(channel).DeleteNotificationPolicy(
                    api.DeleteNotificationPolicyRequest(client_id=other))),
                await answer(stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=missing))),
            ]
        async with service.channel() as channel:
            admin_missing = [
                await answer(stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=missing))),
                await answer(stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                    client_id=missing, group_interval_seconds=60))),
                await answer(stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                    client_id=missing, group_interval_seconds=60, expected_version=3))),
                await answer(stub(channel).DeleteNotificationPolicy(
                    api.DeleteNotificationPolicyRequest(client_id=missing))),
            ]
            untouched = await stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=other))
    assert answers == [(NOT_FOUND, f"client_id: no client {other}")] * 3 + [
        (NOT_FOUND, f"client_id: no client {missing}")]
    assert admin_missing == [(NOT_FOUND, f"client_id: no client {missing}")] * 4
    assert (untouched.version, untouched.group_interval_seconds) == (1, 60)


async def test_deleting_a_client_deletes_its_policy(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        async with service.channel() as channel:
            await stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(
                client_id=client_id, group_interval_seconds=60))
            await rule_service_pb2_grpc.RuleServiceStub(channel).DeleteClient(
                rule_service_pb2.DeleteClientRequest(client_id=client_id))
    assert await fetch(stack_settings, "SELECT 1 FROM notification_policies WHERE client_id = $1", client_id) == []


@pytest.mark.parametrize("request_fields, problem", [
    ({"group_by": ["alert_id"]}, "group_by: unknown field 'alert_id' (expected any of severity, source, name, rule)"),
    ({"group_wait_seconds": -1}, "group_wait_seconds: -1 is not between 0 and 3600"),
    ({"group_wait_seconds": 3601}, "group_wait_seconds: 3601 is not between 0 and 3600"),
    ({"group_interval_seconds": 0}, "group_interval_seconds: 0 is not between 1 and 86400"),
    ({"group_interval_seconds": 86401}, "group_interval_seconds: 86401 is not between 1 and 86400"),
    ({"max_emails_per_hour": 100_001},
     "max_emails_per_hour: 100001 is not between 1 and 100000 (0: the platform's default)"),
    ({"max_emails_per_hour": -1}, "max_emails_per_hour: -1 is not between 1 and 100000 (0: the platform's default)"),
    ({"expected_version": -1}, "expected_version: the version the change is based on is required"),
    ({"client_id": "acme"}, "client_id: not a UUID: 'acme'"),
    ({"client_id": ""}, "client_id: missing"),
])
async def test_an_invalid_policy_is_invalid_argument_naming_the_field_and_changes_nothing(
        stack_settings: StackSettings, request_fields: dict[str, Any], problem: str) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        async with service.channel() as channel:
            refused = await answer(stub(channel).SetNotificationPolicy(api.SetNotificationPolicyRequest(**{
                "client_id": client_id, "group_wait_seconds": 10, "group_interval_seconds": 300, **request_fields})))
    assert refused == (INVALID, problem)
    assert await fetch(stack_settings, "SELECT 1 FROM notification_policies") == []


async def test_the_policy_and_silence_services_are_served_healthy_reflected_authenticated_and_counted(
        stack_settings: StackSettings) -> None:
    names = ("alerting.v1.NotificationPolicyService", "alerting.v1.SilenceService")
    calls = [("/alerting.v1.NotificationPolicyService/GetNotificationPolicy", "OK"),
             ("/alerting.v1.NotificationPolicyService/GetNotificationPolicy", "UNAUTHENTICATED"),
             ("/alerting.v1.SilenceService/ListSilences", "OK")]
    before = [handled(*call) for call in calls]
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        async with service.channel() as channel:
            health = [(await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name))
                       ).status for name in names]
            responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            reflected = {entry.name async for response in responses
                         for entry in response.list_services_response.service}
            await stub(channel).GetNotificationPolicy(api.GetNotificationPolicyRequest(client_id=client_id))
            await silence_service_pb2_grpc.SilenceServiceStub(channel).ListSilences(
                silence_service_pb2.ListSilencesRequest())
        async with service.channel(api_key="") as channel:
            anonymous = await answer(stub(channel).GetNotificationPolicy(
                api.GetNotificationPolicyRequest(client_id=client_id)))
    assert health == [health_pb2.HealthCheckResponse.SERVING] * 2
    assert set(names) <= reflected
    assert anonymous == (grpc.StatusCode.UNAUTHENTICATED, "no API key: send the metadata `authorization: Bearer <key>`")
    assert [handled(*call) - count for call, count in zip(calls, before, strict=True)] == [1.0, 1.0, 1.0]


def handled(method: str, code: str) -> float:
    """How many calls of `method` the rule-service's metrics counted with status `code`."""
    return REGISTRY.get_sample_value("alerting_grpc_server_handled_total", {"method": method, "code": code}) or 0.0
