"""The evaluator's durable step: every alert of a batch matched against the index, and
its matches published to `alerts.matched`, one message per client."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from alerting.common import topics
from alerting.common.failpoints import failpoint
from alerting.common.kafka import Delivery, OutgoingMessage, publish_all
from alerting.common.settings import KafkaSettings
from alerting.common.vocabulary import SEVERITY_NAMES
from alerting.evaluator.alerts import matched_event
from alerting.evaluator.matcher import RuleIndex
from alerting.v1 import events_pb2


class AlertEvaluator:
    """The durable step of a batch: publish every alert's matches, one message per client."""

    def __init__(self, settings: KafkaSettings, index: RuleIndex, producer: AIOKafkaProducer) -> None:
        self.topic = settings.topic(topics.ALERTS_MATCHED)
        self.index = index
        self.producer = producer

    async def handle(self, deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        messages: list[OutgoingMessage] = []
        for delivery in deliveries:
            alert = delivery.message.alert
            matches = self.index.match(SEVERITY_NAMES[alert.severity], alert.source, alert.name)
            delivery.span.set_attribute("alerting.alert_id", alert.alert_id)
            delivery.span.set_attribute("alerting.matched_clients", len(matches))
            context = delivery.trace_context
            messages += [
                OutgoingMessage(
                    self.topic,
                    matched_event(alert, match).SerializeToString(),
                    key=match.client_id.encode(),
                    trace_context=context,
                )
                for match in matches
            ]
        await publish_all(self.producer, messages)
        failpoint("after_publish")
