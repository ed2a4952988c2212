"""The alert-producer CLI against the real broker: JSON lines, flags and the load mode."""

import asyncio
import json

from aiokafka import ConsumerRecord
from click.testing import CliRunner, Result

from alerting.common import topics
from alerting.producer.main import cli
from alerting.testsupport.services import read
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, events_pb2


async def producer(settings: StackSettings, *args: str, stdin: str | None = None) -> Result:
    env = {"ALERTING_TOPIC_PREFIX": settings.topic_prefix, "ALERTING_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    # The CLI runs its own event loop: in a thread, beside this test's.
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), input=stdin, env=env)


def published_alerts(records: list[ConsumerRecord]) -> list[alert_pb2.Alert]:
    return [events_pb2.AlertNew.FromString(record.value).alert for record in records]


async def test_json_lines_from_stdin_are_published_and_a_bad_line_is_named(stack_settings: StackSettings) -> None:
    lines = [{"severity": "HIGH", "source": "db", "name": "disk", "event_ts": "2026-11-24T10:00:00Z"},
             {"severity": "LOW", "source": "web", "name": "latency", "alert_id": "given-id", "context": {"k": "v"}}]
    result = await producer(stack_settings, "send", "--file", "-", stdin="\n".join(map(json.dumps, lines)) + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("published ") == 2
    alerts = published_alerts(await read(stack_settings, topics.ALERTS_NEW, 2))
    assert sorted((a.source, a.alert_id == "given-id") for a in alerts) == [("db", False), ("web", True)]

    bad = json.dumps({"severity": "SEVERE", "source": "db", "name": "disk"})
    result = await producer(stack_settings, "send", "--file", "-", stdin=json.dumps(lines[0]) + "\n" + bad + "\n")
    assert result.exit_code != 0
    assert "line 2: severity" in result.output
    assert len(await read(stack_settings, topics.ALERTS_NEW, 2)) == 2  # nothing of the bad input went out


async def test_load_sends_the_count_asked_with_duplicates_and_a_summary(stack_settings: StackSettings) -> None:
    result = await producer(stack_settings, "load", "--count", "300", "--rate", "3000", "--duplicates", "0.2")
    assert result.exit_code == 0, result.output
    assert "sent 300 alerts" in result.output and "errors 0" in result.output
    alerts = published_alerts(await read(stack_settings, topics.ALERTS_NEW, 300))
    assert len(alerts) == 300
    assert 200 < len({a.alert_id for a in alerts}) < 300
