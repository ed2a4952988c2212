"""The outbox under concurrent writers: `rule.changed` carries every committed change once,
in seq order, and replaying it ends in exactly the rules table."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import grpc

from alerting.common import topics
from alerting.rule_service.outbox import published_change
from alerting.rules.changelog import DELETE, UPSERT
from alerting.rules.records import RULE_COLUMNS, rule_from_row
from alerting.testsupport.services import fetch, read, rule_service_stub, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2, rule_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api

WRITERS = 8
OPERATIONS = 25
CLIENTS = 4
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL", "*")
CALL_TIMEOUT = 30
# A refused conditional write (a concurrent writer got there first) is an expected outcome.
EXPECTED_REFUSALS = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)


@dataclass
class Outcomes:
    """What the writers were told, shared by all of them."""

    live: dict[str, int] = field(default_factory=dict)  # rule_id -> newest version a writer was told of
    upserts: list[tuple[str, int]] = field(default_factory=list)  # (rule_id, version) of each successful write
    deleted: list[str] = field(default_factory=list)  # rule_id of each successful DeleteRule
    deleted_clients: list[str] = field(default_factory=list)
    refusals: list[grpc.StatusCode] = field(default_factory=list)


def rule_fields(rng: random.Random, writer: int, number: int) -> tuple[str, str, str, list[str]]:
    """severity, source, name and emails of a valid rule (its source is never *)."""
    return rng.choice(SEVERITIES), f"w{writer}-op{number}", rng.choice(("*", "disk")), [f"w{writer}@x.io"]


async def write(
    stub: rule_service_pb2_grpc.RuleServiceAsyncStub, clients: list[str], writer: int, outcomes: Outcomes
) -> None:
    """OPERATIONS random rule changes (seeded by `writer`), racing the other writers on the same rules.
    The last writer deletes the last client half-way through, while the others write its rules."""
    rng = random.Random(writer)
    for number in range(OPERATIONS):
        await asyncio.sleep(0)  # interleave with the other writers between calls too
        kind = rng.choices(("create", "update", "delete"), weights=(4, 5, 2))[0] if outcomes.live else "create"
        if writer == WRITERS - 1 and number == OPERATIONS // 2:
            kind = "delete client"
        severity, source, name, emails = rule_fields(rng, writer, number)
        rule_id = rng.choice(sorted(outcomes.live)) if outcomes.live else ""
        try:
            if kind == "delete client":
                await stub.DeleteClient(api.DeleteClientRequest(client_id=clients[-1]), timeout=CALL_TIMEOUT)
                outcomes.deleted_clients.append(clients[-1])
            elif kind == "create":
                rule = await stub.CreateRule(
                    api.CreateRuleRequest(client_id=rng.choice(clients), severity=severity, source=source, name=name,
                                          emails=emails),
                    timeout=CALL_TIMEOUT)
                outcomes.live[rule.rule_id] = rule.version
                outcomes.upserts.append((rule.rule_id, rule.version))
            elif kind == "update":
                if rng.random() < 0.5:  # the current version, else the newest one told to any writer (maybe stale)
                    version = (await stub.GetRule(api.GetRuleRequest(rule_id=rule_id), timeout=CALL_TIMEOUT)).version
                else:
                    version = outcomes.live.get(rule_id, 1)
                rule = await stub.UpdateRule(
                    api.UpdateRuleRequest(rule_id=rule_id, severity=severity, source=source, name=name, emails=emails,
                                          enabled=rng.random() < 0.8, expected_version=version),
                    timeout=CALL_TIMEOUT)
                if rule_id in outcomes.live:
                    outcomes.live[rule_id] = max(outcomes.live[rule_id], rule.version)
                outcomes.upserts.append((rule.rule_id, rule.version))
            else:
                expected = outcomes.live.get(rule_id, 1) if rng.random() < 0.5 else 0  # 0: unconditional
                await stub.DeleteRule(api.DeleteRuleRequest(rule_id=rule_id, expected_version=expected),
                                      timeout=CALL_TIMEOUT)
                outcomes.live.pop(rule_id, None)
                outcomes.deleted.append(rule_id)
        except grpc.aio.AioRpcError as error:
            assert error.code() in EXPECTED_REFUSALS, f"writer {writer}, {kind} (operation {number}): {error}"
            outcomes.refusals.append(error.code())
            if error.code() == grpc.StatusCode.NOT_FOUND:
                outcomes.live.pop(rule_id, None)


def unique_in_order(changes: list[events_pb2.RuleChanged]) -> list[events_pb2.RuleChanged]:
    """The changes without exact repeats of one published before (a relay may republish after a
    crash); fails when the seqs of the rest are not strictly increasing, or a repeated seq
    carries another change."""
    first: dict[int, events_pb2.RuleChanged] = {}
    unique: list[events_pb2.RuleChanged] = []
    for change in changes:
        if change.seq in first:
            assert change == first[change.seq], f"seq {change.seq} published as two different changes"
            continue
        assert not unique or change.seq > unique[-1].seq, f"seq {change.seq} after {unique[-1].seq}"
        first[change.seq] = change
        unique.append(change)
    return unique


async def test_concurrent_writers_publish_every_change_once_in_seq_order_and_the_log_replays_to_the_table(
    stack_settings: StackSettings,
) -> None:
    outcomes = Outcomes()
    async with asyncio.timeout(60), rule_service_stub(stack_settings) as stub:
        clients = [(await stub.CreateClient(api.CreateClientRequest(name=f"c{n}"))).client_id for n in range(CLIENTS)]
        await asyncio.gather(*(write(stub, clients, writer, outcomes) for writer in range(WRITERS)))

        async def all_published() -> bool:
            [row] = await fetch(stack_settings, "SELECT count(*) AS n FROM rule_outbox WHERE published_at IS NULL")
            return row["n"] == 0

        await wait_until(all_published, 30, "the relay to publish every outbox row")
        outbox = await fetch(stack_settings, "SELECT seq, rule_id::text, payload FROM rule_outbox ORDER BY seq")
        records = await read(stack_settings, topics.RULE_CHANGED, len(outbox))
        table = await fetch(stack_settings, f"SELECT {RULE_COLUMNS} FROM rules")

    changes = [events_pb2.RuleChanged.FromString(record.value) for record in records]
    # (a) seqs strictly increasing in log order; a repeat would have to be exact, and there is none.
    unique = unique_in_order(changes)
    assert len(unique) == len(changes)
    # (b) exactly the outbox: every row once, as the relay publishes it, keyed by its rule_id.
    assert [c.seq for c in changes] == [row["seq"] for row in outbox]
    assert changes == [published_change(row["seq"], row["payload"]) for row in outbox]
    assert [record.key.decode() for record in records] == [row["rule_id"] for row in outbox]
    # Exactly what the writers were told: each successful create or update once, each delete once.
    upserts = [(c.rule_id, c.rule.version) for c in changes if c.op == UPSERT]
    assert sorted(upserts) == sorted(outcomes.upserts)
    deletes = [c.rule_id for c in changes if c.op == DELETE]
    assert len(deletes) == len(set(deletes))
    cascaded = [c for c in changes if c.op == DELETE and c.rule_id not in outcomes.deleted]
    assert sorted(c.rule_id for c in changes if c.op == DELETE and c.rule_id in outcomes.deleted) == sorted(
        outcomes.deleted)
    assert {c.client_id for c in cascaded} <= set(outcomes.deleted_clients)
    # (c) replaying the log ends in exactly the rules table.
    replayed: dict[str, rule_pb2.Rule] = {}
    for change in changes:
        if change.op == UPSERT:
            replayed[change.rule_id] = change.rule
        else:
            assert change.op == DELETE and not change.HasField("rule")
            del replayed[change.rule_id]  # a delete of a rule the log never created fails here
    assert replayed == {str(row["rule_id"]): rule_from_row(row) for row in table}
    # (d) per rule: versions 1, 2, ... in log order, each once, then at most a delete, its last change.
    history: dict[str, list[events_pb2.RuleChanged]] = {}
    for change in changes:
        history.setdefault(change.rule_id, []).append(change)
    for rule_id, rule_changes in history.items():
        ops = [(events_pb2.RuleChanged.Op.Name(c.op), c.rule.version) for c in rule_changes]
        upserted = [("OP_UPSERT", version) for version in range(1, len(ops) + 1)]
        assert ops in (upserted, upserted[:-1] + [("OP_DELETE", 0)]), f"rule {rule_id} went through {ops}"
    # The race was real: every kind of write succeeded, and the client was deleted under the writers.
    assert outcomes.deleted_clients == [clients[-1]]
    assert min(len(outcomes.upserts), len(outcomes.deleted)) > 0 and len(upserts) > len(set(r for r, _ in upserts))
