"""The rule-service as main() sets it up: with the gRPC server instrumentation, every RPC
still answers, the health service's streaming Watch included (what a probe may use)."""

import asyncio

from grpc_health.v1 import health_pb2, health_pb2_grpc

from alerting.rule_service.main import instrument_grpc_server
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import rule_service_pb2 as api
from alerting.v1 import rule_service_pb2_grpc


async def test_an_instrumented_server_answers_health_watch_check_and_the_api(stack_settings: StackSettings) -> None:
    instrument_grpc_server()
    async with rule_service(stack_settings) as service:
        async with service.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="alerting.v1.RuleService"))
            first = await asyncio.wait_for(watch.read(), 10)
            watch.cancel()
            checked = await health.Check(health_pb2.HealthCheckRequest(service=""))
            created = await rule_service_pb2_grpc.RuleServiceStub(channel).CreateClient(
                api.CreateClientRequest(name="acme"))
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    assert checked.status == health_pb2.HealthCheckResponse.SERVING
    assert created.name == "acme"
