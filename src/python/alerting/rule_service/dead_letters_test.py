"""The DeadLetterService over real gRPC on the real stack: dead letters made by a real
aggregator, listed through the rule-service and replayed to the topic they came from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import alerting.aggregator.main
from alerting.common import telemetry, topics
from alerting.common.kafka import OutgoingMessage, kafka_client_options, make_producer, publish_all
from alerting.common.settings import AggregatorSettings
from alerting.producer.alerts import build_alert
from alerting.rule_service import dead_letters
from alerting.testsupport import stack
from alerting.testsupport.services import free_port, read, rule_service, running
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, dead_letter_service_pb2_grpc, events_pb2
from alerting.v1 import dead_letter_service_pb2 as api

TOPICS = ", ".join(topics.INPUT_TOPICS)


def matched(client_id: str, alert_id: str | None = None) -> bytes:
    alert: alert_pb2.Alert = build_alert("HIGH", "db", "disk")
    if alert_id is not None:
        alert.alert_id = alert_id
    return events_pb2.AlertMatched(schema_version=1, client_id=client_id, alert=alert,
                                   rule_ids=[str(uuid.uuid4())], emails=["ops@x.io"]).SerializeToString()


async def single_partition(settings: StackSettings) -> StackSettings:
    """The same slice of the stack with one-partition topics: dead letters keep the order sent."""
    settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}single."})
    await stack.create_topics(settings, {topics.ALERTS_MATCHED: 1, topics.NOTIFICATIONS_READY: 1})
    return settings


@asynccontextmanager
async def rule_service_channel(settings: StackSettings) -> AsyncIterator[grpc.aio.Channel]:
    """A running rule-service on a free port, and a channel to it."""
    async with rule_service(settings) as service, service.channel() as channel:
        yield channel


@asynccontextmanager
async def dead_letter_stub(
    settings: StackSettings,
) -> AsyncIterator[dead_letter_service_pb2_grpc.DeadLetterServiceAsyncStub]:
    """A running rule-service on a free port, and a DeadLetterService client of it."""
    async with rule_service_channel(settings) as channel:
        yield dead_letter_service_pb2_grpc.DeadLetterServiceStub(channel)


async def status_of(call: Awaitable[object]) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details()


def as_listed(record: ConsumerRecord, source: api.DeadLetterSource, reason: str, replay_of: str = ""
              ) -> api.DeadLetter:
    """What ListDeadLetters says of a dead-letter record read back from Kafka."""
    listed = api.DeadLetter(offset=record.offset, source=source, reason=reason, key=record.key,
                            value_size=len(record.value), replay_of=replay_of)
    listed.timestamp.FromMilliseconds(record.timestamp)
    return listed


@pytest.fixture(scope="module", autouse=True)
def tracing() -> None:
    """As in every service: the Kafka clients instrumented, so trace context travels."""
    telemetry.setup_tracing("dead-letters-test", StackSettings(), exporter=InMemorySpanExporter())


def contents(records: list[ConsumerRecord]) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Key, value and headers but the trace headers, which every send injects afresh."""
    return [(record.key, record.value, [(k, v) for k, v in record.headers if k not in telemetry.TRACE_HEADERS])
            for record in records]


def trace_id_of(record: ConsumerRecord) -> str:
    return dict(record.headers)["traceparent"].decode().split("-")[1]


async def test_dead_letters_are_listed_and_replayed_at_most_once_per_call(stack_settings: StackSettings) -> None:
    settings = await single_partition(stack_settings)
    matched_topic = settings.topic(topics.ALERTS_MATCHED)
    dlq = settings.topic(topics.dead_letter(topics.ALERTS_MATCHED))
    bad_client, bad_alert = matched("not-a-uuid"), matched(str(uuid.uuid4()), alert_id="nul\x00id")
    reasons = ["client_id: not a UUID: 'not-a-uuid'", "alert.alert_id: contains the control character U+0000"]
    traceparent = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
    sent = [(b"key-1", bad_client, [("origin", b"test-1")]), (b"key-2", bad_alert, [("origin", b"test-2")])]
    traces = [telemetry.context_from_traceparent(traceparent.decode()), None]  # the first one in a known trace
    aggregator = AggregatorSettings(**settings.model_dump())
    async with running(alerting.aggregator.main.run, aggregator), dead_letter_stub(settings) as stub:
        producer = make_producer(settings)
        await producer.start()
        try:
            await publish_all(producer, [
                OutgoingMessage(matched_topic, value, key=key, headers=headers, trace_context=trace)
                for (key, value, headers), trace in zip(sent, traces, strict=True)])
        finally:
            await producer.stop()
        dead = await read(settings, topics.dead_letter(topics.ALERTS_MATCHED), 2)

        # Listed as the aggregator dead-lettered them, in offset order, and page by page.
        expected = [as_listed(record, api.DeadLetterSource(topic=matched_topic, partition=0, offset=number), reason)
                    for number, (record, reason) in enumerate(zip(dead, reasons, strict=True))]
        listed = await stub.ListDeadLetters(api.ListDeadLettersRequest(topic=topics.ALERTS_MATCHED))
        assert listed == api.ListDeadLettersResponse(dead_letters=expected, next_offset=2, end_offset=2)
        first = await stub.ListDeadLetters(api.ListDeadLettersRequest(topic=topics.ALERTS_MATCHED, max_count=1))
        assert first == api.ListDeadLettersResponse(dead_letters=expected[:1], next_offset=1, end_offset=2)
        second = await stub.ListDeadLetters(api.ListDeadLettersRequest(
            topic=topics.ALERTS_MATCHED, start_offset=1, max_count=1))
        assert second == api.ListDeadLettersResponse(dead_letters=expected[1:], next_offset=2, end_offset=2)
        past_the_end = await stub.ListDeadLetters(api.ListDeadLettersRequest(
            topic=topics.ALERTS_MATCHED, start_offset=5))
        assert past_the_end == api.ListDeadLettersResponse(next_offset=5, end_offset=2)

        # An offset the topic does not hold: NOT_FOUND naming it, and nothing is sent.
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic=topics.ALERTS_MATCHED, offsets=[1, 7]))) == (
            grpc.StatusCode.NOT_FOUND, f"offsets: {dlq} has no dead letter at offset 7 (it holds offsets 0 to 1)")
        assert contents(await read(settings, topics.ALERTS_MATCHED, 2)) == sent

        # Nothing fixed; the first one replayed: an offset given twice is sent once.
        replayed = await stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic=topics.ALERTS_MATCHED, offsets=[0, 0]))
        assert replayed == api.ReplayDeadLettersResponse(replayed=1, offsets=[0], topic=matched_topic)
        key, value, headers = sent[0]
        replay = (key, value, [*headers, ("dlq.replay_of", f"{dlq}/0/0".encode())])
        records = await read(settings, topics.ALERTS_MATCHED, 3)
        assert contents(records) == [*sent, replay]
        assert trace_id_of(records[2]) == "1" * 32  # the replay goes on in the original trace

        # Still invalid, so the aggregator dead-letters the replay again, saying what it replayed.
        again = (await read(settings, topics.dead_letter(topics.ALERTS_MATCHED), 3))[2]
        listed = await stub.ListDeadLetters(api.ListDeadLettersRequest(topic=topics.ALERTS_MATCHED, start_offset=2))
        assert listed == api.ListDeadLettersResponse(dead_letters=[as_listed(
            again, api.DeadLetterSource(topic=matched_topic, partition=0, offset=2), reasons[0],
            replay_of=f"{dlq}/0/0")], next_offset=3, end_offset=3)

        # A second replay command publishes it once more: at most once per command, not ever.
        replayed = await stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(topic=topics.ALERTS_MATCHED, offsets=[0]))
        assert replayed == api.ReplayDeadLettersResponse(replayed=1, offsets=[0], topic=matched_topic)
        assert contents(await read(settings, topics.ALERTS_MATCHED, 4)) == [*sent, replay, replay]
        assert len(await read(settings, topics.dead_letter(topics.ALERTS_MATCHED), 4)) == 4


@pytest.mark.parametrize("request_fields, details", [
    ({"topic": "alerts.bogus"}, f"topic: unknown 'alerts.bogus' (expected one of {TOPICS})"),
    ({"topic": "alerts.new.dlq"}, f"topic: unknown 'alerts.new.dlq' (expected one of {TOPICS})"),
    ({}, f"topic: missing (expected one of {TOPICS})"),
    ({"topic": "alerts.new", "start_offset": -1}, "start_offset: -1 is negative"),
    ({"topic": "alerts.new", "max_count": 1001}, "max_count: 1001 is not between 0 and 1000"),
])
async def test_invalid_list_requests_name_the_field(
    stack_settings: StackSettings, request_fields: dict[str, Any], details: str
) -> None:
    async with dead_letter_stub(stack_settings) as stub:
        assert await status_of(stub.ListDeadLetters(api.ListDeadLettersRequest(**request_fields))) == (
            grpc.StatusCode.INVALID_ARGUMENT, details)


async def test_empty_dead_letter_topics_errors_health_and_reflection(stack_settings: StackSettings) -> None:
    dlq = stack_settings.topic("rule.changed.dlq")
    async with rule_service_channel(stack_settings) as channel:
        stub = dead_letter_service_pb2_grpc.DeadLetterServiceStub(channel)
        assert await stub.ListDeadLetters(api.ListDeadLettersRequest(topic=topics.RULE_CHANGED)) == (
            api.ListDeadLettersResponse(next_offset=0, end_offset=0))
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic=topics.RULE_CHANGED, offsets=[0]))) == (
            grpc.StatusCode.NOT_FOUND, f"offsets: {dlq} has no dead letter at offset 0 (it holds no dead letters)")
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(topic=topics.RULE_CHANGED))) == (
            grpc.StatusCode.INVALID_ARGUMENT, "offsets: missing")
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic=topics.RULE_CHANGED, offsets=[-3, 2]))) == (
            grpc.StatusCode.INVALID_ARGUMENT, "offsets: -3 is negative")
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic="rules", offsets=[0]))) == (
            grpc.StatusCode.INVALID_ARGUMENT, f"topic: unknown 'rules' (expected one of {TOPICS})")
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic=topics.RULE_CHANGED, offsets=range(1001)))) == (
            grpc.StatusCode.INVALID_ARGUMENT, "offsets: 1001 of them, at most 1000 per call")

        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="alerting.v1.DeadLetterService"))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name async for r in responses for s in r.list_services_response.service}
    assert "alerting.v1.DeadLetterService" in services


async def test_a_missing_dead_letter_topic_or_one_of_several_partitions_is_a_failed_precondition(
    stack_settings: StackSettings,
) -> None:
    settings = stack_settings.model_copy(update={"topic_prefix": f"{stack_settings.topic_prefix}odd."})
    several = settings.topic(topics.dead_letter(topics.ALERTS_NEW))
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(several, 2, 1)])
    finally:
        await admin.close()
    async with dead_letter_stub(settings) as stub:
        assert await status_of(stub.ListDeadLetters(api.ListDeadLettersRequest(topic=topics.ALERTS_NEW))) == (
            grpc.StatusCode.FAILED_PRECONDITION, f"topic: {several} has 2 partitions; a dead-letter topic has one")
        missing = settings.topic(topics.dead_letter(topics.ALERTS_MATCHED))
        assert await status_of(stub.ReplayDeadLetters(api.ReplayDeadLettersRequest(
            topic=topics.ALERTS_MATCHED, offsets=[0]))) == (
            grpc.StatusCode.FAILED_PRECONDITION, f"topic: {missing} does not exist")


async def test_kafka_out_of_reach_is_unavailable(stack_settings: StackSettings) -> None:
    unreachable = stack_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    dlq = stack_settings.topic("alerts.new.dlq")
    async with dead_letter_stub(unreachable) as stub:
        code, details = await status_of(stub.ListDeadLetters(
            api.ListDeadLettersRequest(topic=topics.ALERTS_NEW), timeout=20))
    assert (code, (details or "").split(": Kafka failed: ")[0]) == (grpc.StatusCode.UNAVAILABLE, f"reading {dlq}")


# ------------------------------------------------------------------ the pure parts
def test_fetch_windows_cover_the_offsets_in_reads_of_bounded_size() -> None:
    assert dead_letters.fetch_windows([0, 1, 2, 499, 500, 501, 5000], size=500) == [(0, 500), (500, 2), (5000, 1)]
    assert dead_letters.fetch_windows([7]) == [(7, 1)]
    assert dead_letters.fetch_windows([]) == []


def test_a_replay_publishes_each_offset_asked_for_once_in_order() -> None:
    assert dead_letters.replay_offsets([5, 1, 5, 0]) == [0, 1, 5]
