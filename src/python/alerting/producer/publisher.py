"""Publishing alerts to `alerts.new`; each alert starts its trace here."""

from __future__ import annotations

from opentelemetry import trace

from alerting.common import topics
from alerting.common.kafka import OutgoingMessage, make_producer, publish_all
from alerting.common.settings import KafkaSettings
from alerting.producer.alerts import alert_new
from alerting.v1 import alert_pb2

tracer = trace.get_tracer("producer")


class AlertPublisher:
    def __init__(self, settings: KafkaSettings) -> None:
        self.topic = settings.topic(topics.ALERTS_NEW)
        self.producer = make_producer(settings)

    async def __aenter__(self) -> AlertPublisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.producer.stop()

    async def publish(self, alerts: list[alert_pb2.Alert]) -> list[str]:
        """Publish and wait for the broker's acknowledgement; the trace id of each alert."""
        messages: list[OutgoingMessage] = []
        trace_ids: list[str] = []
        for alert in alerts:
            with tracer.start_as_current_span("alerts.new publish", kind=trace.SpanKind.PRODUCER) as span:
                span.set_attribute("alerting.alert_id", alert.alert_id)
                trace_ids.append(format(span.get_span_context().trace_id, "032x"))
                messages.append(
                    OutgoingMessage(
                        self.topic,
                        alert_new(alert).SerializeToString(),
                        key=alert.alert_id.encode(),
                        trace_context=trace.set_span_in_context(span),
                    )
                )
        await publish_all(self.producer, messages)
        return trace_ids
