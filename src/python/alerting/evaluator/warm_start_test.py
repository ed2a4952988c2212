"""The evaluator's warm start on the real stack: the index of a snapshot is the index of its
rules, and a snapshot of the older format is read from Postgres instead, and left as it is."""

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from alerting.common.redis_client import redis_client
from alerting.evaluator.alerts import indexed_grant, rule_fields
from alerting.evaluator.main_test import insert_rule_row
from alerting.evaluator.matcher import RuleIndex
from alerting.evaluator.warm_start import load_index
from alerting.rules import snapshot
from alerting.rules.snapshot_test import write_older_format
from alerting.testsupport.stack import StackSettings
from alerting.v1 import rule_pb2


@pytest.fixture
async def client(stack_settings: StackSettings) -> AsyncIterator[redis.Redis]:
    connection = redis_client(stack_settings)
    yield connection
    await connection.aclose()


def rules_of_two_clients() -> list[rule_pb2.Rule]:
    """Rules of every kind the index tells apart: wildcards, several of a client in one
    bucket, receivers, a disabled one; enough of them to fill several chunks."""
    clients = [str(uuid.uuid4()) for _ in range(2)]
    rules = []
    for number in range(300):
        rules.append(rule_pb2.Rule(
            rule_id=str(uuid.uuid4()), client_id=clients[number % 2], severity=("HIGH", "*")[number % 3 == 0],
            source=("db", "web", "*")[number % 3], name=("disk", "*")[number % 5 == 0],
            emails=[f"ops{number % 4}@x.io"], receiver_ids=[str(uuid.UUID(int=number))] if number % 7 == 0 else [],
            enabled=number % 11 != 0, version=number + 1))
    return rules


async def test_the_index_of_the_snapshot_is_the_index_of_its_rules(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    rules = rules_of_two_clients()
    grants = [rule_pb2.SourceGrant(client_id=client_id, source=source, prefix=False)
              for client_id in {r.client_id for r in rules} for source in ("db", "web")]
    await snapshot.write_full(client, stack_settings, snapshot.Snapshot(rules, version=9, next_offset=0, grants=grants))
    warm = await load_index(client, stack_settings)
    expected = RuleIndex()
    expected.load(rule_fields(r) for r in rules)
    expected.load_grants(indexed_grant(g) for g in grants)
    assert (warm.rebuilt, warm.version, warm.next_offset) == (False, 9, 0)
    assert {r.rule_id: r for r in warm.index.rules()} == {r.rule_id: r for r in expected.rules()}
    assert warm.index.grants() == expected.grants()
    alerts = [(severity, source, name) for severity in ("HIGH", "LOW") for source in ("db", "web")
              for name in ("disk", "cpu")]
    assert [sorted(warm.index.match(*alert)) for alert in alerts] == [sorted(expected.match(*alert))
                                                                      for alert in alerts]
    assert len(warm.index.match("HIGH", "db", "disk")) == 2


async def test_a_snapshot_of_the_older_format_is_read_from_postgres_and_left_to_the_rule_updater(
    client: redis.Redis, stack_settings: StackSettings
) -> None:
    _, in_postgres = await insert_rule_row(stack_settings, "db")
    only_in_old = rule_pb2.Rule(rule_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), severity="*", source="*",
                                name="disk", emails=["a@x.io"], enabled=True, version=1)
    await write_older_format(client, stack_settings, only_in_old, version=1, next_offset=0)
    warm = await load_index(client, stack_settings)
    assert warm.rebuilt and [r.rule_id for r in warm.index.rules()] == [in_postgres]
    assert await client.hexists(stack_settings.redis_key(snapshot.SNAPSHOT_KEY), only_in_old.rule_id)
