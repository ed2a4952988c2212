"""Publishing: messages sent together, each continuing the trace it belongs to, and
acknowledged by the broker before the caller goes on.

The trace goes on in headers written here (`traceparent`), not through a producer span per
message (the aiokafka instrumentation's): those spans were a third of the evaluator's CPU,
and the consumer's span of each message already links the services' spans into one trace."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context

from alerting.common import telemetry


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    # The trace context the message continues (None: the current one).
    trace_context: otel_context.Context | None = None


async def publish_all(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    """Send every message, with the headers of its trace, and wait until the broker has
    acknowledged all of them."""
    deliveries = []
    # Messages of one trace come together (an alert's matches): its headers are made once.
    made: dict[int, list[tuple[str, bytes]]] = {}
    for message in messages:
        context = otel_context.get_current() if message.trace_context is None else message.trace_context
        trace_headers = made.get(id(context))
        if trace_headers is None:
            trace_headers = made[id(context)] = telemetry.trace_headers(context)
        deliveries.append(await producer.send(message.topic, message.value, key=message.key,
                                              headers=[*message.headers, *trace_headers]))
    if deliveries:
        await asyncio.gather(*deliveries)
