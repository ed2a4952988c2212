"""The rule-service over real gRPC, with Postgres and the outbox relay to Kafka."""

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from alerting.common import topics
from alerting.common.kafka import make_producer
from alerting.rule_service import outbox
from alerting.rules.changelog import UPSERT
from alerting.rules.records import RULE_COLUMNS, rule_from_row
from alerting.testsupport.services import (
    fetch,
    forward_port,
    free_port,
    read,
    rule_service,
    rule_service_stub,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2
from alerting.v1 import rule_service_pb2 as api


async def status_of(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = caught.value.details()
    assert details is not None
    return caught.value.code(), details


def rule_request(owner: str, **overrides: Any) -> api.CreateRuleRequest:
    fields: dict[str, Any] = dict(client_id=owner, severity="HIGH", source="db", name="*", emails=["ops@x.io"])
    fields.update(overrides)
    return api.CreateRuleRequest(**fields)


async def test_crud_round_trip_and_errors(stack_settings: StackSettings) -> None:
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
     ({"source": "s" * 300}, "source"), ({"client_id": "not-a-uuid"}, "client_id"),
     ({"source": "db\x00"}, "source"), ({"emails": ["ops\x00@x.io"]}, "emails[0]")],
)
async def test_invalid_rules_are_invalid_argument_naming_the_field(
    stack_settings: StackSettings, overrides: dict[str, Any], field: str
) -> None:
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        code, details = await status_of(stub.CreateRule(rule_request(client.client_id, **overrides)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")


async def test_a_client_name_with_nul_is_invalid_argument_naming_the_field(stack_settings: StackSettings) -> None:
    async with rule_service_stub(stack_settings) as stub:
        code, details = await status_of(stub.CreateClient(api.CreateClientRequest(name="acme\x00")))
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "name: contains the control character U+0000")


async def test_names_with_invisible_format_characters_are_invalid_argument_naming_the_field(
        stack_settings: StackSettings) -> None:
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        answers = [
            await status_of(stub.CreateClient(api.CreateClientRequest(name="acme\u202efdp.exe"))),
            await status_of(stub.UpdateClient(api.UpdateClientRequest(
                client_id=client.client_id, name="ac\u200dme", expected_version=client.version))),
            await status_of(stub.CreateRule(rule_request(client.client_id, source="db\u200b"))),
            await status_of(stub.CreateRule(rule_request(client.client_id, name="disk\ufeff"))),
        ]
        clients = await stub.ListClients(api.ListClientsRequest())
        rules = await stub.ListRules(api.ListRulesRequest(client_id=client.client_id))
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert answers == [(invalid, "name: contains the format character U+202E"),
                       (invalid, "name: contains the format character U+200D"),
                       (invalid, "source: contains the format character U+200B"),
                       (invalid, "name: contains the format character U+FEFF")]
    assert [c.name for c in clients.clients] == ["acme"] and list(rules.rules) == []


async def test_pagination_returns_every_rule_exactly_once(stack_settings: StackSettings) -> None:
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


async def test_health_checking_and_reflection(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        async with service.channel(api_key="") as channel:  # probes and tools need no key
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="alerting.v1.RuleService"))
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            services = [s.name async for r in responses for s in r.list_services_response.service]
    assert "alerting.v1.RuleService" in services and "grpc.health.v1.Health" in services


async def test_a_rule_service_started_while_kafka_is_unreachable_serves_and_relays_once_it_is_back(
    stack_settings: StackSettings,
) -> None:
    kafka_port = free_port()  # nothing listens here until the forwarder below starts
    settings = stack_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{kafka_port}"})
    async with rule_service_stub(settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        rule = await stub.CreateRule(rule_request(client.client_id))
        [row] = await fetch(stack_settings, "SELECT published_at FROM rule_outbox")
        assert row["published_at"] is None
        kafka = await forward_port(kafka_port, stack_settings.kafka_bootstrap)
        try:
            [record] = await read(stack_settings, topics.RULE_CHANGED, 1)
        finally:
            kafka.close()
    assert events_pb2.RuleChanged.FromString(record.value).rule_id == rule.rule_id


async def test_changes_reach_rule_changed_in_commit_order_even_when_committed_while_no_relay_ran(
    stack_settings: StackSettings,
) -> None:
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


async def waiting_on_a_lock(settings: StackSettings) -> bool:
    [row] = await fetch(settings, "SELECT count(*) AS n FROM pg_stat_activity"
                                  " WHERE datname = current_database() AND wait_event_type = 'Lock'")
    return row["n"] > 0


async def test_delete_client_records_a_delete_for_a_rule_whose_insert_commits_while_it_runs(
    stack_settings: StackSettings,
) -> None:
    """The cascade removes every rule of the client, including one inserted concurrently:
    each of them needs its DELETE in the outbox, or it lives on in the snapshot."""
    async with rule_service_stub(stack_settings) as stub:
        client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
        existing = await stub.CreateRule(rule_request(client.client_id))
        creator = await asyncpg.connect(stack_settings.database_url)
        try:
            async with creator.transaction():  # what CreateRule does, held open before its commit
                late = await creator.fetchrow(
                    f"INSERT INTO rules (client_id, severity, source, name, emails)"
                    f" VALUES ($1, 'HIGH', 'db', 'late', '{{ops@x.io}}') RETURNING {RULE_COLUMNS}", client.client_id)
                await outbox.add_change(creator, UPSERT, str(late["rule_id"]), client.client_id, rule_from_row(late),
                                        "test")
                deleting = asyncio.ensure_future(stub.DeleteClient(api.DeleteClientRequest(client_id=client.client_id)))
                await wait_until(lambda: waiting_on_a_lock(stack_settings), 30, "DeleteClient to wait for the insert")
            await asyncio.wait_for(deleting, 30)
        finally:
            await creator.close()
    assert await fetch(stack_settings, "SELECT rule_id FROM rules") == []
    deletes = await fetch(stack_settings, "SELECT rule_id::text FROM rule_outbox WHERE op = 'DELETE'")
    assert sorted(row["rule_id"] for row in deletes) == sorted([existing.rule_id, str(late["rule_id"])])


async def test_published_outbox_rows_past_the_retention_are_purged_and_unpublished_ones_never(
    stack_settings: StackSettings,
) -> None:
    rows = [(timedelta(hours=1), True), (timedelta(hours=1), False), (timedelta(seconds=1), True)]  # age, published
    connection = await asyncpg.connect(stack_settings.database_url)
    try:
        for age, published in rows:
            await connection.execute(
                "INSERT INTO rule_outbox (rule_id, client_id, op, payload, created_at, published_at)"
                " VALUES ($1, $2, 'DELETE', '', now() - $3::interval, CASE WHEN $4 THEN now() - $3::interval END)",
                uuid.uuid4(), uuid.uuid4(), age, published)
        relay = outbox.OutboxRelay(stack_settings, make_producer(stack_settings), retention_seconds=60)  # not started
        assert await relay.purge_published(connection) == 1
        assert await relay.purge_published(connection) == 0
        kept = await connection.fetch("SELECT published_at IS NULL AS unpublished FROM rule_outbox ORDER BY seq")
    finally:
        await connection.close()
    assert [row["unpublished"] for row in kept] == [True, False]
