"""The dead-letter format: what a record that can never be processed becomes on `<topic>.dlq`."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from alerting.common import telemetry
from alerting.common.kafka.publishing import OutgoingMessage
from alerting.common.topics import dead_letter


def dead_letter_message(record: ConsumerRecord, reason: str) -> OutgoingMessage:
    """The record for `<topic>.dlq`: key, value and headers kept, the reason and source
    added. Its trace goes on: the trace headers are continued, not copied (the Kafka
    instrumentation injects the context of the dead letter's send, in the same trace)."""
    headers = [(key, value) for key, value in record.headers or ()
               if key not in ("dlq.reason", "dlq.source") and key not in telemetry.TRACE_HEADERS]
    headers += [
        # Bounded, and valid UTF-8 whatever the reason holds (a lone surrogate is escaped).
        ("dlq.reason", reason.encode("utf-8", "backslashreplace")[:2000].decode("utf-8", "ignore").encode()),
        ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]
    return OutgoingMessage(
        topic=dead_letter(record.topic),
        value=record.value or b"",
        key=record.key,
        headers=headers,
        trace_context=telemetry.context_from_headers(record.headers),
    )
