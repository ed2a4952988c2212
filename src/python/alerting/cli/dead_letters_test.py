"""alertctl dlq against a real rule-service and real dead-letter topics."""

from __future__ import annotations

import json

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from alerting.common import topics
from alerting.common.kafka import dead_letter_message, make_producer, publish_all
from alerting.testsupport.alertctl import alertctl, usage_error
from alerting.testsupport.services import read, rule_service, send
from alerting.testsupport.stack import StackSettings
from alerting.v1 import dead_letter_service_pb2 as dead_letters_api
from alerting.v1 import events_pb2


async def test_dlq_list_and_replay(stack_settings: StackSettings) -> None:
    matched_topic = stack_settings.topic(topics.ALERTS_MATCHED)
    dlq = stack_settings.topic(topics.dead_letter(topics.ALERTS_MATCHED))
    bad = [events_pb2.AlertMatched(schema_version=2).SerializeToString(), b"\xff not protobuf"]
    await send(stack_settings, topics.ALERTS_MATCHED, bad, keys=[b"key-1", b"key-2"])
    originals = sorted(await read(stack_settings, topics.ALERTS_MATCHED, 2), key=lambda record: record.value != bad[0])
    # As the aggregator dead-letters them.
    reasons = ["schema_version: unsupported 2 (expected 1)", "undecodable AlertMatched: Error parsing message"]
    producer = make_producer(stack_settings)
    await producer.start()
    try:
        await publish_all(producer, [dead_letter_message(record, reason)
                                     for record, reason in zip(originals, reasons, strict=True)])
    finally:
        await producer.stop()
    dead = await read(stack_settings, topics.dead_letter(topics.ALERTS_MATCHED), 2)

    def when(milliseconds: int) -> str:
        stamp = Timestamp()
        stamp.FromMilliseconds(milliseconds)
        return stamp.ToJsonString()

    rows = [[str(number), when(record.timestamp), f"{original.topic}/{original.partition}/{original.offset}",
             original.key.decode(), str(len(original.value)), reason]
            for number, (record, original, reason) in enumerate(zip(dead, originals, reasons, strict=True))]

    async with rule_service(stack_settings) as service:
        listed = await alertctl(service, "dlq", "list", "alerts.matched")
        assert (listed.exit_code, listed.stderr) == (0, "")
        header, rule, *lines = listed.stdout.splitlines()
        assert header.split() == ["offset", "timestamp", "source", "key", "value_size", "replay_of", "reason"]
        assert [line.split(None, 5) for line in lines] == rows

        first = await alertctl(service, "dlq", "list", "alerts.matched", "--limit", "1")
        assert [line.split(None, 5) for line in first.stdout.splitlines()[2:]] == rows[:1]
        assert first.stderr == "(more: --from 1; the last offset is 1)\n"
        second = await alertctl(service, "dlq", "list", "alerts.matched", "--from", "1", "--limit", "1")
        assert ([line.split(None, 5) for line in second.stdout.splitlines()[2:]], second.stderr) == (rows[1:], "")

        as_json = await alertctl(service, "--output", "json", "dlq", "list", "alerts.matched")
        expected = []
        for record, original, reason in zip(dead, originals, reasons, strict=True):
            listed_one = dead_letters_api.DeadLetter(
                offset=record.offset, reason=reason, key=original.key, value_size=len(original.value),
                source=dead_letters_api.DeadLetterSource(
                    topic=original.topic, partition=original.partition, offset=original.offset))
            listed_one.timestamp.FromMilliseconds(record.timestamp)
            expected.append(MessageToDict(listed_one, preserving_proto_field_name=True,
                                          always_print_fields_with_no_presence=True))
        assert json.loads(as_json.stdout) == expected
        assert expected[1]["key"] == "a2V5LTI=" and expected[1]["replay_of"] == ""  # base64 of key-2; every field

        replayed = await alertctl(service, "dlq", "replay", "alerts.matched", "1", "1")
        assert (replayed.exit_code, replayed.stdout) == (0, f"replayed 1 to {matched_topic}: dead-letter offsets 1\n")
        replayed = await alertctl(service, "--output", "json", "dlq", "replay", "alerts.matched", "1")
        assert json.loads(replayed.stdout) == [{"replayed": 1, "offsets": ["1"], "topic": matched_topic}]
        on_topic = await read(stack_settings, topics.ALERTS_MATCHED, 4)
        replays = [(record.key, record.value, list(record.headers)) for record in on_topic if record.headers]
        assert replays == [(b"key-2", bad[1], [("dlq.replay_of", f"{dlq}/0/1".encode())])] * 2

        missing = await alertctl(service, "dlq", "replay", "alerts.matched", "0", "5")
        assert (missing.exit_code, missing.stderr) == (
            4, f"Error: NOT_FOUND: offsets: {dlq} has no dead letter at offset 5 (it holds offsets 0 to 1)\n")
        unknown = await alertctl(service, "dlq", "list", "alerts.matched.dlq")
        assert (unknown.exit_code, unknown.stderr) == (
            3, "Error: INVALID_ARGUMENT: topic: unknown 'alerts.matched.dlq' (expected one of alerts.new,"
               " rule.changed, alerts.matched, notifications.ready)\n")
    assert len(await read(stack_settings, topics.ALERTS_MATCHED, 4)) == 4  # the NOT_FOUND replay published nothing


@pytest.mark.parametrize("args, error", [
    (["replay", "alerts.new"], "Error: Missing argument 'OFFSET...'."),
    (["list", "alerts.new", "--from", "-1"], "Error: Invalid value for '--from': -1 is not in the range x>=0."),
])
async def test_an_offset_alertctl_cannot_read_is_a_usage_error(args: list[str], error: str) -> None:
    assert await usage_error("dlq", *args) == (2, "", error)
