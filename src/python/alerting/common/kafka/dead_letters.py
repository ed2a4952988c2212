"""The dead-letter format, defined here only: what a record that can never be processed
becomes on `<topic>.dlq` (its key, value and headers, plus the reason and the position it
came from), how a dead letter's headers are read back, and what a replay of one publishes
again to its topic."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import ConsumerRecord

from alerting.common import telemetry
from alerting.common.kafka.publishing import OutgoingMessage
from alerting.common.topics import dead_letter

# Every header the format adds starts so, and a replay drops them all.
DLQ_HEADER_PREFIX = "dlq."
REASON_HEADER = "dlq.reason"  # why the record can never be processed
SOURCE_HEADER = "dlq.source"  # where it was: a Position
REPLAY_HEADER = "dlq.replay_of"  # on a replayed record: the dead letter's Position
MAX_REASON_BYTES = 2000
# Kafka's own bounds: partitions are int32, offsets int64.
MAX_PARTITION = 2**31 - 1
MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class Position:
    """A record's place in Kafka, written `<topic>/<partition>/<offset>` in the headers."""

    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, record: ConsumerRecord) -> Position:
        return cls(record.topic, record.partition, record.offset)

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def parse_position(value: bytes | None) -> Position | None:
    """A header's `<topic>/<partition>/<offset>`; None if it is not one."""
    try:
        topic, partition, offset = (value or b"").decode("utf-8").rsplit("/", 2)
        position = Position(topic, int(partition), int(offset))
    except ValueError:  # UnicodeDecodeError, too few parts, not numbers
        return None
    in_range = 0 <= position.partition <= MAX_PARTITION and 0 <= position.offset <= MAX_OFFSET
    return position if topic and in_range else None


def header(record: ConsumerRecord, name: str) -> bytes | None:
    """The record's last header called `name`, None without one."""
    values = [value for key, value in record.headers or () if key == name]
    return values[-1] if values else None


def header_text(record: ConsumerRecord, name: str) -> str:
    value = header(record, name)
    return "" if value is None else value.decode("utf-8", "replace")


def reason_header(reason: str) -> bytes:
    """The reason as its header holds it: bounded, and valid UTF-8 whatever the reason holds
    (a lone surrogate is escaped)."""
    return reason.encode("utf-8", "backslashreplace")[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode()


def dead_letter_message(record: ConsumerRecord, reason: str) -> OutgoingMessage:
    """The record for `<topic>.dlq`: key, value and headers kept, the reason and source
    added (replacing any the record had). Its trace goes on: the trace headers are
    continued, not copied (the Kafka instrumentation injects the context of the dead
    letter's send, in the same trace)."""
    headers = [(key, value) for key, value in record.headers or ()
               if key not in (REASON_HEADER, SOURCE_HEADER) and key not in telemetry.TRACE_HEADERS]
    headers += [
        (REASON_HEADER, reason_header(reason)),
        (SOURCE_HEADER, str(Position.of(record)).encode()),
    ]
    return OutgoingMessage(
        topic=dead_letter(record.topic),
        value=record.value or b"",
        key=record.key,
        headers=headers,
        trace_context=telemetry.context_from_headers(record.headers),
    )


def replay_message(record: ConsumerRecord, topic: str) -> OutgoingMessage:
    """The dead letter `record` as it is published again to `topic`: its key, value and
    headers without the dlq.* ones, plus dlq.replay_of naming the dead letter. Its trace
    goes on as a dead letter's does."""
    headers = [(key, value) for key, value in record.headers or ()
               if not key.startswith(DLQ_HEADER_PREFIX) and key not in telemetry.TRACE_HEADERS]
    headers.append((REPLAY_HEADER, str(Position.of(record)).encode()))
    return OutgoingMessage(topic=topic, value=record.value or b"", key=record.key, headers=headers,
                           trace_context=telemetry.context_from_headers(record.headers))
