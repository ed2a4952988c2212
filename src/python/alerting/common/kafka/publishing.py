"""Publishing: messages sent together, each continuing the trace it belongs to, and
acknowledged by the broker before the caller goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    # The trace context the message continues; the aiokafka instrumentation injects it.
    trace_context: otel_context.Context | None = None


async def publish_all(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    """Send every message and wait until the broker has acknowledged all of them."""
    deliveries = []
    for message in messages:
        token = otel_context.attach(message.trace_context) if message.trace_context is not None else None
        try:
            deliveries.append(
                await producer.send(message.topic, message.value, key=message.key, headers=list(message.headers))
            )
        finally:
            if token is not None:
                otel_context.detach(token)
    if deliveries:
        await asyncio.gather(*deliveries)
