"""The rule-service over real gRPC, with Postgres and the outbox relay to Kafka."""

import asyncio
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from alerting.v1 import events_pb2
from alerting.v1 import rule_service_pb2 as api
from common import topics
from rule_service.main import RuleServiceSettings, run
from testsupport.services import fetch, free_port, read, rule_service_stub, running


async def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details()


def rule_request(owner, **overrides):
    fields = dict(client_id=owner, severity="HIGH", source="db", name="*", emails=["ops@x.io"])
    fields.update(overrides)
    return api.CreateRuleRequest(**fields)


async def test_crud_round_trip_and_errors(stack_settings):
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        assert (await stub.GetClient(api.GetClientRequest(client_id=client.client_id))).name == "acme"
        renamed = await stub.UpdateClient(api.UpdateClientRequest(
            client_id=client.client_id, name="acme corp", expected_version=client.version))
        assert (renamed.name, renamed.version) == ("acme corp", client.version + 1)

        rule = await stub.CreateRule(rule_request(client.client_id))
        assert rule.enabled and rule.version == 1
        updated = await stub.UpdateRule(api.UpdateRuleRequest(
            rule_id=rule.rule_id, severity="*", source="db", name="disk", emails=["a@x.io"], enabled=False,
            expected_version=1))
        assert (updated.severity, updated.enabled, updated.version) == ("*", False, 2)

        code, details = await status_of(stub.UpdateRule(api.UpdateRuleRequest(
            rule_id=rule.rule_id, severity="*", source="db", name="disk", emails=["a@x.io"], expected_version=1)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "current version is 2" in details

        await stub.DeleteRule(api.DeleteRuleRequest(rule_id=rule.rule_id))
        code, details = await status_of(stub.GetRule(api.GetRuleRequest(rule_id=rule.rule_id)))
        assert code == grpc.StatusCode.NOT_FOUND and details.startswith("rule_id:")
        code, _ = await status_of(stub.CreateRule(rule_request(str(uuid.uuid4()))))
        assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "overrides, field",
    [({"severity": "URGENT"}, "severity"), ({"severity": "*", "source": "*", "name": "*"}, "rule"),
     ({"emails": []}, "emails"), ({"emails": ["ok@x.io", "broken"]}, "emails[1]"),
     ({"source": "s" * 300}, "source"), ({"client_id": "not-a-uuid"}, "client_id")],
)
async def test_invalid_rules_are_invalid_argument_naming_the_field(stack_settings, overrides, field):
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        code, details = await status_of(stub.CreateRule(rule_request(client.client_id, **overrides)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


async def test_pagination_returns_every_rule_exactly_once(stack_settings):
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        created = {(await stub.CreateRule(rule_request(client.client_id, source=f"s{i}"))).rule_id for i in range(7)}
        seen, token, pages = [], "", 0
        while True:
            page = await stub.ListRules(api.ListRulesRequest(client_id=client.client_id, page_size=3, page_token=token))
            seen += [rule.rule_id for rule in page.rules]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert pages == 3 and len(seen) == 7 and set(seen) == created
        code, _ = await status_of(stub.ListRules(api.ListRulesRequest(page_token="nonsense")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_checking_and_reflection(stack_settings):
    settings = RuleServiceSettings(**{**stack_settings.model_dump(), "grpc_port": free_port()})
    async with running(run, settings):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="alerting.v1.RuleService"))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            services = [s.name async for r in responses for s in r.list_services_response.service]
    assert "alerting.v1.RuleService" in services and "grpc.health.v1.Health" in services


async def test_changes_reach_rule_changed_in_commit_order_even_when_committed_while_no_relay_ran(stack_settings):
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        rules = [await stub.CreateRule(rule_request(client.client_id, source=f"s{i}")) for i in range(3)]
        await stub.DeleteClient(api.DeleteClientRequest(client_id=client.client_id))
        await read(stack_settings, topics.RULE_CHANGED, 6)

    # A change committed while no relay runs (as after a crash between commit and publish).
    await fetch(stack_settings,
                "UPDATE rule_outbox SET published_at = NULL WHERE seq = (SELECT max(seq) FROM rule_outbox)")
    async with rule_service_stub(stack_settings):
        records = await read(stack_settings, topics.RULE_CHANGED, 7)
        await asyncio.sleep(0.5)
    changes = [events_pb2.RuleChanged.FromString(r.value) for r in records]
    unique = {c.seq: c for c in changes}
    assert [c.seq for c in unique.values()] == sorted(unique)
    ops = [(events_pb2.RuleChanged.Op.Name(c.op), c.rule_id) for c in unique.values()]
    ids = [rule.rule_id for rule in rules]
    assert ops[:3] == [("OP_UPSERT", rule_id) for rule_id in ids]
    assert sorted(ops[3:]) == sorted(("OP_DELETE", rule_id) for rule_id in ids)
    [pending] = await fetch(stack_settings, "SELECT count(*) AS n FROM rule_outbox WHERE published_at IS NULL")
    assert pending["n"] == 0
