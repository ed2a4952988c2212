"""The rule-service's gRPC server metrics, from calls to a real in-process rule-service."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from alerting.testsupport.services import rule_service, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import rule_service_pb2 as api
from alerting.v1 import rule_service_pb2_grpc

RULES = "/alerting.v1.RuleService/"
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def snapshot() -> dict[tuple[str, str, str], float]:
    """Every sample of the two gRPC metrics: (name, method, code) -> value ('' where there is no code)."""
    samples: dict[tuple[str, str, str], float] = {}
    for family in REGISTRY.collect():
        if family.name in ("alerting_grpc_server_handled", "alerting_grpc_server_handling_seconds"):
            for sample in family.samples:
                if sample.name in ("alerting_grpc_server_handled_total", "alerting_grpc_server_handling_seconds_count"):
                    key = (sample.name, sample.labels["method"], sample.labels.get("code", ""))
                    samples[key] = sample.value
    return samples


def increase(before: dict[tuple[str, str, str], float]) -> dict[tuple[str, str, str], float]:
    """What changed since `before`, by sample."""
    after = snapshot()
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


async def test_calls_are_counted_by_method_and_status_code_and_timed(stack_settings: StackSettings) -> None:
    before = snapshot()
    async with asyncio.timeout(60), rule_service(stack_settings) as service:
        async with service.channel() as channel:
            stub = rule_service_pb2_grpc.RuleServiceStub(channel)
            first = await stub.CreateClient(api.CreateClientRequest(name="acme"))
            await stub.CreateClient(api.CreateClientRequest(name="globex"))
            await stub.GetClient(api.GetClientRequest(client_id=first.client_id))
            for client_id in (str(uuid.uuid4()), str(uuid.uuid4()), "not-a-uuid"):
                try:
                    await stub.GetClient(api.GetClientRequest(client_id=client_id))
                except grpc.aio.AioRpcError as error:
                    assert error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
            await stub.ListClients(api.ListClientsRequest())
            # Services beside RuleService: health (unary), reflection (a stream both ways).
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")] * 2))
            assert len([response async for response in reflection]) == 2
            # A server stream the client walks away from: CANCELLED.
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            await watch.read()
            watch.cancel()

            async def watch_counted() -> bool:
                return increase(before).get(("alerting_grpc_server_handled_total", HEALTH + "Watch", "CANCELLED")) == 1

            await wait_until(watch_counted, 10, "the cancelled Watch to be counted")

    assert increase(before) == {
        ("alerting_grpc_server_handled_total", RULES + "CreateClient", "OK"): 2,
        ("alerting_grpc_server_handled_total", RULES + "GetClient", "OK"): 1,
        ("alerting_grpc_server_handled_total", RULES + "GetClient", "NOT_FOUND"): 2,
        ("alerting_grpc_server_handled_total", RULES + "GetClient", "INVALID_ARGUMENT"): 1,
        ("alerting_grpc_server_handled_total", RULES + "ListClients", "OK"): 1,
        ("alerting_grpc_server_handled_total", HEALTH + "Check", "OK"): 1,
        ("alerting_grpc_server_handled_total", REFLECTION, "OK"): 1,
        ("alerting_grpc_server_handled_total", HEALTH + "Watch", "CANCELLED"): 1,
        ("alerting_grpc_server_handling_seconds_count", RULES + "CreateClient", ""): 2,
        ("alerting_grpc_server_handling_seconds_count", RULES + "GetClient", ""): 4,
        ("alerting_grpc_server_handling_seconds_count", RULES + "ListClients", ""): 1,
        ("alerting_grpc_server_handling_seconds_count", HEALTH + "Check", ""): 1,
        ("alerting_grpc_server_handling_seconds_count", REFLECTION, ""): 1,
        ("alerting_grpc_server_handling_seconds_count", HEALTH + "Watch", ""): 1,
    }
