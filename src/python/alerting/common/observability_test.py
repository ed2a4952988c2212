"""What operators see of running services, on the real stack: readiness and liveness of a
service process waiting for Kafka, its JSON log lines with trace ids, the outbox backlog
gauge and the notification status gauges."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

from prometheus_client import REGISTRY

import alerting.aggregator.main
import alerting.rule_service.main
from alerting.aggregator.recorder import NOTIFICATIONS
from alerting.common import telemetry, topics
from alerting.common.kafka import OutgoingMessage, make_producer, publish_all
from alerting.producer.alerts import build_alert
from alerting.rule_service.outbox import OUTBOX_UNPUBLISHED
from alerting.testsupport.services import (
    fetch,
    forward_port,
    free_port,
    http_get,
    read,
    rule_service,
    running,
    service_environment,
    stop_process,
    wait_for_port,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import events_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode().rstrip("\n"))


def entries(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON log lines so far; fails on a line that is not one JSON object."""
    parsed = [json.loads(line) for line in list(lines)]
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


async def test_a_service_waiting_for_kafka_is_alive_but_not_ready_and_logs_json_with_trace_ids(
    stack_settings: StackSettings,
) -> None:
    kafka_port = free_port()  # nothing listens there until the forwarder starts
    env = service_environment(
        stack_settings, ALERTING_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}", ALERTING_LOG_FORMAT="json",
        ALERTING_RETRY_INITIAL_SECONDS="0.05", ALERTING_RETRY_MAX_SECONDS="0.5",
    )
    port = int(env["ALERTING_METRICS_PORT"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alerting.aggregator.main", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    lines: list[str] = []
    reading = asyncio.create_task(collect(process.stderr, lines))
    proxy: asyncio.Server | None = None
    try:
        async with asyncio.timeout(120):
            await wait_for_port(port, 60)

            async def retrying_kafka() -> bool:
                return sum("starting a Kafka" in entry["message"] for entry in entries(lines)) >= 3

            await wait_until(retrying_kafka, 30, "attempts to reach Kafka")
            assert await http_get(port, "/livez") == (200, "ok\n")
            assert await http_get(port, "/readyz") == (503, "not ready\n")
            assert await http_get(port, "/healthz") == (503, "not ready\n")

            proxy = await forward_port(kafka_port, stack_settings.kafka_bootstrap)

            async def ready() -> bool:
                return (await http_get(port, "/readyz"))[0] == 200

            await wait_until(ready, 60, "the aggregator to be ready once Kafka is reachable")
            assert await http_get(port, "/livez") == (200, "ok\n")
            assert await http_get(port, "/healthz") == (200, "ok\n")

            # An invalid match in a trace: the dead-lettering line carries that trace's ids.
            producer = make_producer(stack_settings)
            await producer.start()
            try:
                bad = events_pb2.AlertMatched(schema_version=1, client_id="not-a-uuid",
                                              alert=build_alert("HIGH", "a", "b"), rule_ids=[str(uuid.uuid4())],
                                              emails=["ops@x.io"])
                await publish_all(producer, [OutgoingMessage(
                    stack_settings.topic(topics.ALERTS_MATCHED), bad.SerializeToString(), key=b"k",
                    headers=[("traceparent", TRACEPARENT.encode())],
                    trace_context=telemetry.context_from_traceparent(TRACEPARENT))])
            finally:
                await producer.stop()
            [sent] = await read(stack_settings, topics.ALERTS_MATCHED, 1)
            await read(stack_settings, topics.dead_letter(topics.ALERTS_MATCHED), 1)

            async def logged() -> bool:
                return any(entry["message"].startswith("dead-lettering") for entry in entries(lines))

            await wait_until(logged, 30, "the dead-lettering log line")
    finally:
        await stop_process(process)
        if proxy is not None:
            proxy.close()
        await asyncio.wait_for(reading, 30)

    assert process.returncode == 0
    logged_entries = entries(lines)  # every line the process wrote is one JSON object
    assert {entry["service"] for entry in logged_entries} == {"aggregator"}
    assert all(set(entry) >= {"time", "level", "logger", "message", "service"} for entry in logged_entries)
    starting = next(entry for entry in logged_entries if entry["message"] == "aggregator starting")
    assert (starting["level"], starting["logger"]) == ("INFO", "alerting.common.service")
    assert "trace_id" not in starting
    [dead_lettering] = [entry for entry in logged_entries if entry["message"].startswith("dead-lettering")]
    assert dead_lettering["level"] == "WARNING"
    # The record's context: the header above, or the producer's span when this process traces its sends.
    received = [value.decode() for key, value in sent.headers if key == "traceparent"][-1]
    assert (dead_lettering["trace_id"], dead_lettering["span_id"]) == (TRACE_ID, received.split("-")[2])


def outbox_backlog() -> float | None:
    return REGISTRY.get_sample_value("alerting_outbox_unpublished")


async def test_the_outbox_gauge_counts_the_changes_kafka_has_not_received(stack_settings: StackSettings) -> None:
    kafka_port = free_port()  # Kafka out of reach: rule changes commit, and wait in the outbox
    OUTBOX_UNPUBLISHED.set(-1)  # no value left from another test
    async with asyncio.timeout(90), rule_service(stack_settings, kafka_bootstrap=f"127.0.0.1:{kafka_port}") as service:
        lifecycle = service.lifecycle
        async with service.channel() as channel:
            stub = rule_service_pb2_grpc.RuleServiceStub(channel)
            client = await stub.CreateClient(api.CreateClientRequest(name="acme"))
            for number in range(3):
                await stub.CreateRule(api.CreateRuleRequest(client_id=client.client_id, severity="HIGH",
                                                            source=f"s{number}", name="*", emails=["ops@x.io"]))

            async def backlog(count: int) -> bool:
                return outbox_backlog() == count

            await wait_until(lambda: backlog(3), 20, "the gauge to count 3 unpublished changes")
            [row] = await fetch(stack_settings, "SELECT count(*) AS n FROM rule_outbox WHERE published_at IS NULL")
            assert row["n"] == 3
            # The rule-service serves (Postgres is all its RPCs need): ready, with Kafka out of reach.
            assert lifecycle.is_ready() and lifecycle.is_alive()

            proxy = await forward_port(kafka_port, stack_settings.kafka_bootstrap)
            try:
                await wait_until(lambda: backlog(0), 30, "the gauge to fall to 0 once Kafka is back")
                assert len(await read(stack_settings, topics.RULE_CHANGED, 3)) == 3
            finally:
                proxy.close()


def status_gauges() -> dict[str, float]:
    return {
        sample.labels["status"]: sample.value
        for family in REGISTRY.collect() if family.name == "alerting_notifications"
        for sample in family.samples
    }


async def test_the_sweeper_counts_notifications_by_status(stack_settings: StackSettings) -> None:
    tenants = [str(uuid.uuid4()) for _ in range(3)]
    statuses = {tenants[0]: ["PENDING", "PENDING", "FAILED", "SENT", "SENT", "SENT"],
                tenants[1]: ["FAILED", "SENT", "SENT"],
                tenants[2]: ["PENDING"]}
    for tenant, wanted in statuses.items():
        for number, status in enumerate(wanted):
            await fetch(stack_settings,
                        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status)"
                        " VALUES ($1, $2, '{}', '{ops@x.io}', '', $3)", tenant, f"a{number}", status)
    NOTIFICATIONS.labels("PENDING").set(-1)  # no value left from another test
    NOTIFICATIONS.labels("FAILED").set(-1)
    settings = stack_settings.model_copy(update={"sweep_interval_seconds": 0.2})
    async with asyncio.timeout(60), running(alerting.aggregator.main.run, settings):

        async def counted(expected: dict[str, float]) -> bool:
            return status_gauges() == expected

        await wait_until(lambda: counted({"PENDING": 3, "FAILED": 2}), 20, "the first count")
        await fetch(stack_settings, "UPDATE notifications SET status = 'FAILED' WHERE client_id = $1", tenants[2])
        await wait_until(lambda: counted({"PENDING": 2, "FAILED": 3}), 20, "the count after a change")
