"""evaluator: `alerts.new` → match against the in-memory rule index → `alerts.matched`.

The index is warmed from the Redis snapshot (rebuilt from Postgres only when it is
missing or corrupt) and kept current by reading `rule.changed` from exactly the offset
the snapshot covers, outside any consumer group: every evaluator sees every change.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace

from alerting.v1 import events_pb2
from common import telemetry, topics
from common.failpoints import failpoint
from common.kafka import BatchWorker, Delivery, InvalidEvent, OutgoingMessage, make_consumer, make_producer, publish_all
from common.service import Lifecycle, run_service
from common.settings import Settings
from evaluator.alerts import SEVERITY_NAMES, decode_alert_new, indexed_rule, matched_event
from evaluator.matcher import RuleIndex
from rule_updater import snapshot
from rule_updater.changes import decode_rule_changed

log = logging.getLogger("evaluator")
tracer = trace.get_tracer("evaluator")
GROUP = "evaluator"


def apply_change(index: RuleIndex, change: events_pb2.RuleChanged) -> None:
    if change.op == events_pb2.RuleChanged.OP_UPSERT:
        index.upsert(indexed_rule(change.rule))
    else:
        index.delete(change.rule_id, change.rule.version)


class RuleFollower:
    """Applies `rule.changed` to the index from a given offset, catching up first."""

    def __init__(self, settings: Settings, index: RuleIndex, next_offset: int) -> None:
        self.index = index
        self.partition = TopicPartition(settings.topic(topics.RULE_CHANGED), 0)
        self.next_offset = next_offset
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign([self.partition])
        self.consumer.seek(self.partition, self.next_offset)
        end = (await self.consumer.end_offsets([self.partition]))[self.partition]
        while self.next_offset < end:
            await self.poll()

    async def poll(self) -> None:
        batch = await self.consumer.getmany(self.partition, timeout_ms=500, max_records=5000)
        for record in batch.get(self.partition, []):
            try:
                apply_change(self.index, decode_rule_changed(record))
            except InvalidEvent as error:
                # The rule-updater dead-letters it; here it is simply not a rule.
                log.warning("ignoring invalid rule change at offset %d: %s", record.offset, error)
            self.next_offset = record.offset + 1

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()

    async def stop(self) -> None:
        await self.consumer.stop()


def index_from_rules(rules) -> RuleIndex:
    """The index of a snapshot's rules. The cyclic garbage collector is paused meanwhile:
    a million new, acyclic objects would otherwise trigger it over and over."""
    index = RuleIndex()
    gc.disable()
    try:
        index.load(indexed_rule(rule) for rule in rules)
    finally:
        gc.enable()
    return index


async def warm_index(settings: Settings) -> tuple[RuleIndex, int]:
    """The index from the snapshot (or a rebuild), and the first offset it does not cover."""
    client = redis.from_url(settings.redis_url)
    try:
        loaded, rebuilt = await snapshot.load_or_rebuild(client, settings, log)
    finally:
        await client.aclose()
    index = index_from_rules(loaded.rules)
    log.info("warmed %d rules from the %s, up to rule.changed offset %d",
             len(index), "rebuilt snapshot" if rebuilt else "snapshot", loaded.next_offset)
    return index, loaded.next_offset


class AlertEvaluator:
    """The durable step of a batch: publish every alert's matches, one message per client."""

    def __init__(self, settings: Settings, index: RuleIndex, producer) -> None:
        self.topic = settings.topic(topics.ALERTS_MATCHED)
        self.index = index
        self.producer = producer

    async def handle(self, deliveries: list[Delivery[events_pb2.AlertNew]]) -> None:
        messages: list[OutgoingMessage] = []
        for delivery in deliveries:
            alert = delivery.message.alert
            with tracer.start_as_current_span(
                f"{delivery.record.topic} process",
                context=delivery.trace_context,
                kind=trace.SpanKind.CONSUMER,
                attributes=telemetry.messaging_attributes(delivery.record),
            ) as span:
                matches = self.index.match(SEVERITY_NAMES[alert.severity], alert.source, alert.name)
                span.set_attribute("alerting.alert_id", alert.alert_id)
                span.set_attribute("alerting.matched_clients", len(matches))
                context = trace.set_span_in_context(span)
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


async def run(settings: Settings, lifecycle: Lifecycle) -> None:
    index, next_offset = await warm_index(settings)
    follower = RuleFollower(settings, index, next_offset)
    consumer = make_consumer(settings, GROUP, topics.ALERTS_NEW)
    producer = make_producer(settings)
    await follower.start()
    await producer.start()
    await consumer.start()
    following = asyncio.create_task(follower.follow(lifecycle.stop))
    try:
        worker = BatchWorker(
            service="evaluator",
            settings=settings,
            consumer=consumer,
            producer=producer,
            decode=decode_alert_new,
            handle=AlertEvaluator(settings, index, producer).handle,
            stop=lifecycle.stop,
        )
        lifecycle.healthy = lambda: worker.last_batch_ok and not following.done()
        await worker.run()
    finally:
        lifecycle.stop.set()
        await following
        await consumer.stop()
        await producer.stop()
        await follower.stop()


def main() -> None:
    run_service("evaluator", Settings(), run)


if __name__ == "__main__":
    main()
