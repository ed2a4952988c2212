"""One rule state: a live evaluator that follows `rule.changed`, the rule-updater's snapshot
of it (on the real Redis), and an evaluator restarted from that snapshot at any point and
replaying the log from there hold the same rules and source grants, whatever the log holds:
seqs out of order, repeated or implausibly far ahead, deletes, grants given and revoked,
and records that are no change at all."""

import itertools

import redis.asyncio as redis
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace

from alerting.common import topics
from alerting.common.kafka import Delivery
from alerting.common.redis_client import redis_client
from alerting.evaluator.alerts import indexed_grant, rule_fields
from alerting.evaluator.follower import apply_records
from alerting.evaluator.matcher import Grant, IndexedRule, RuleIndex
from alerting.rule_updater.writer import SnapshotWriter
from alerting.rules import snapshot
from alerting.rules.changelog import MAX_SEQ_JUMP
from alerting.testsupport.profiles import on_the_stack
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.strategies import any_rule_changed, valid_rules, values_of
from alerting.v1 import events_pb2, rule_pb2

examples = itertools.count()
# Few rule ids and clients, so that changes of one rule interleave.
rule_ids = st.sampled_from([f"00000000-0000-4000-8000-00000000000{n}" for n in range(6)])
client_ids = st.sampled_from(["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"])
# Few sources, so that a grant is given, revoked and given again.
grant_sources = st.sampled_from(["db", "db.", "web"])
# What an index holds: its rules by id, and its grants.
State = tuple[dict[str, IndexedRule], set[Grant]]


@st.composite
def changes(draw: st.DrawFn) -> bytes:
    """A change as the outbox relay would publish one, with a seq that may be out of order,
    repeated or far ahead; now and then anything else."""
    rule = draw(valid_rules(client_ids=client_ids, rule_ids=rule_ids))
    seq = draw(st.one_of(st.integers(1, 40), st.integers(1, 40), st.just(MAX_SEQ_JUMP + 41)))
    kind = draw(st.integers(0, 5))
    if kind >= 4:
        grant = rule_pb2.SourceGrant(client_id=draw(client_ids), source=draw(grant_sources), prefix=draw(st.booleans()))
        change = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq,
                                        op=events_pb2.RuleChanged.OP_GRANT if kind == 4 else
                                        events_pb2.RuleChanged.OP_REVOKE, client_id=grant.client_id, grant=grant)
    elif kind == 0:
        change = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq,
                                        op=events_pb2.RuleChanged.OP_DELETE, rule_id=rule.rule_id,
                                        client_id=rule.client_id)
    else:
        change = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, seq=seq,
                                        op=events_pb2.RuleChanged.OP_UPSERT, rule_id=rule.rule_id,
                                        client_id=rule.client_id, rule=rule)
    return change.SerializeToString()


def log_records(values: list[bytes]) -> list[ConsumerRecord]:
    return [ConsumerRecord(topics.RULE_CHANGED, 0, offset, 0, 0, b"k", value, None, 1, len(value), ())
            for offset, value in enumerate(values)]


def state(index: RuleIndex) -> State:
    return {rule.rule_id: rule for rule in index.rules()}, index.grants()


def held(loaded: snapshot.Snapshot[rule_pb2.Rule]) -> State:
    index = RuleIndex()
    index.load(rule_fields(rule) for rule in loaded.rules)
    index.load_grants(indexed_grant(grant) for grant in loaded.grants)
    return state(index)


async def restarted(client: redis.Redis, settings: StackSettings, records: list[ConsumerRecord]) -> State:
    """The rules and grants of an evaluator warmed from the snapshot as it stands, then
    following the log."""
    loaded = await snapshot.load_converted(client, settings, rule_fields)
    assert loaded is not None
    index = RuleIndex()
    index.load(loaded.rules)
    index.load_grants(indexed_grant(grant) for grant in loaded.grants)
    apply_records(index, records[loaded.next_offset:], loaded.version)
    return state(index)


@on_the_stack(share=2)
@given(values=st.lists(st.one_of(changes(), changes(), changes(), values_of(any_rule_changed())), max_size=40),
       cuts=st.sets(st.integers(1, 39)))
async def test_live_snapshot_and_restarted_indexes_hold_the_same_rules(
    stack_settings: StackSettings, values: list[bytes], cuts: set[int]
) -> None:
    prefix = f"{stack_settings.redis_key_prefix}{next(examples)}:"
    settings = stack_settings.model_copy(update={"redis_key_prefix": prefix})
    records = log_records(values)
    live = RuleIndex()
    apply_records(live, records, 0)
    expected = state(live)

    client = redis_client(settings)
    try:
        await snapshot.write_full(client, settings, snapshot.Snapshot([], version=0, next_offset=0))
        writer = SnapshotWriter(client, settings, stop=None, last_seq=0)  # type: ignore[arg-type]
        bounds = sorted(cut for cut in cuts if cut < len(records))
        # The rule-updater's batches, as the worker hands them over: every record decoded,
        # those it refuses dead-lettered, the rest handled; after each, a restart.
        for start, end in zip([0, *bounds], [*bounds, len(records)], strict=True):
            deliveries = []
            for record in records[start:end]:
                try:
                    deliveries.append(Delivery(record, writer.decode(record), trace.INVALID_SPAN))
                except Exception:  # the worker dead-letters whatever decoding raises
                    continue
            if deliveries:
                await writer.handle(deliveries)
            assert await restarted(client, settings, records) == expected
        loaded = await snapshot.load(client, settings)
        assert loaded is not None and held(loaded) == expected
    finally:
        await snapshot_cleanup(client, settings)
        await client.aclose()


async def snapshot_cleanup(client: redis.Redis, settings: StackSettings) -> None:
    await client.delete(*snapshot.keys(settings))
