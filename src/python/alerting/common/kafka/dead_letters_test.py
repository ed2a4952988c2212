"""The dead-letter format: what a dead letter carries, how its headers read back, and what a
replay publishes again."""

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.kafka.dead_letters import (
    MAX_OFFSET,
    MAX_PARTITION,
    REASON_HEADER,
    SOURCE_HEADER,
    Position,
    dead_letter_message,
    header,
    header_text,
    parse_position,
    replay_message,
)
from alerting.testsupport.strategies import records

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(topic: str, offset: int, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(topic, 1, offset, 1_700_000_000_000, 0, b"k", b"v", None, 1, 1, headers)


def test_a_dead_letter_keeps_key_value_and_headers_and_adds_the_reason_and_source() -> None:
    original = record("p.alerts.new", 7, [("a", b"1"), ("traceparent", TRACEPARENT), (REASON_HEADER, b"earlier"),
                                          ("dlq.replay_of", b"p.alerts.new.dlq/0/3"), (SOURCE_HEADER, b"x/0/0")])
    message = dead_letter_message(original, "alert.alert_id: missing")
    assert (message.topic, message.key, message.value, message.headers) == (
        "p.alerts.new.dlq", b"k", b"v",
        [("a", b"1"), ("dlq.replay_of", b"p.alerts.new.dlq/0/3"), ("dlq.reason", b"alert.alert_id: missing"),
         ("dlq.source", b"p.alerts.new/1/7")])
    assert message.trace_context is not None  # the trace goes on in the dead letter's send


def test_a_reason_is_bounded_valid_utf8() -> None:
    reason = "x\ud800" + "é" * 2000  # a lone surrogate, then more than the bound of two-byte characters
    value = dict(dead_letter_message(record("t", 0, []), reason).headers)[REASON_HEADER]
    assert value == b"x\\ud800" + "é".encode() * 996  # 7 + 1992 bytes: the é the bound cuts is dropped


def test_a_replay_keeps_key_value_and_headers_but_the_dlq_ones_and_names_the_dead_letter() -> None:
    dead = record("p.alerts.new.dlq", 12, [("a", b"1"), (REASON_HEADER, b"bad"), ("b", b"2"),
                                           (SOURCE_HEADER, b"p.alerts.new/1/5"),
                                           ("dlq.replay_of", b"p.alerts.new.dlq/0/3"), ("traceparent", TRACEPARENT)])
    message = replay_message(dead, "p.alerts.new")
    assert (message.topic, message.key, message.value, message.headers) == (
        "p.alerts.new", b"k", b"v", [("a", b"1"), ("b", b"2"), ("dlq.replay_of", b"p.alerts.new.dlq/1/12")])


@pytest.mark.parametrize("value, position", [
    (b"p.alerts.new/3/42", Position("p.alerts.new", 3, 42)),
    (b"a/b/3/42", Position("a/b", 3, 42)),
    (f"t/{MAX_PARTITION}/{MAX_OFFSET}".encode(), Position("t", MAX_PARTITION, MAX_OFFSET)),
    (b"alerts.new/3", None),
    (b"/3/42", None),
    (b"alerts.new/x/42", None),
    (b"alerts.new/3/-1", None),
    (f"t/{MAX_PARTITION + 1}/1".encode(), None),
    (f"t/1/{MAX_OFFSET + 1}".encode(), None),
    (b"\xff/1/2", None),
    (None, None),
])
def test_parse_position(value: bytes | None, position: Position | None) -> None:
    assert parse_position(value) == position


@given(records(st.binary(max_size=40), topic="p.alerts.matched"),
       st.text(st.characters(codec="utf-8"), max_size=200))
def test_a_dead_letter_reads_back_as_its_reason_and_source(original: ConsumerRecord, reason: str) -> None:
    dead = dead_letter_message(original, reason)
    written = ConsumerRecord("p.alerts.matched.dlq", 0, 0, 0, 0, dead.key, dead.value, None, 0, 0, dead.headers)
    assert header_text(written, REASON_HEADER) == reason
    assert parse_position(header(written, SOURCE_HEADER)) == Position.of(original)
