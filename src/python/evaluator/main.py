"""evaluator: `alerts.new` → match against the in-memory rule index → `alerts.matched`.

The index is warmed from the Redis snapshot (rebuilt from Postgres only when it is
missing or corrupt, or when `rule.changed` no longer holds its offset) and kept current by
reading `rule.changed` from exactly the offset the snapshot covers, outside any consumer
group: every evaluator sees every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import redis.asyncio as redis
from aiokafka.errors import OffsetOutOfRangeError
from opentelemetry import trace

from alerting.v1 import events_pb2
from common import telemetry, topics
from common.failpoints import failpoint
from common.kafka import (
    BatchWorker,
    Delivery,
    InvalidEvent,
    OutgoingMessage,
    make_consumer,
    make_producer,
    publish_all,
    start_clients,
)
from common.retry import Stopping, retry_until_done
from common.service import Lifecycle, run_service
from common.settings import Settings
from evaluator.alerts import SEVERITY_NAMES, decode_alert_new, indexed_rule, matched_event, rule_fields
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


class RuleOffsetLost(Exception):
    """`rule.changed` no longer holds the offset the index needs next: no retry brings it back."""


class RuleFollower:
    """Applies `rule.changed` to the index from a given offset, catching up first. A failure
    is retried with backoff from the first offset not applied yet, so no change is skipped."""

    def __init__(self, settings: Settings, index: RuleIndex, next_offset: int) -> None:
        self.settings = settings
        self.index = index
        self.partition = snapshot.rule_changed_partition(settings)
        self.next_offset = next_offset
        self.consumer = snapshot.rule_changed_consumer(settings)
        self.failing = False

    async def start(self, stop: asyncio.Event) -> None:
        await start_clients(self.settings, self.consumer, stop=stop)
        self.consumer.assign([self.partition])
        self.consumer.seek(self.partition, self.next_offset)
        end = (await self.consumer.end_offsets([self.partition]))[self.partition]
        while self.next_offset < end:
            await self.poll(stop)

    async def follow(self, stop: asyncio.Event) -> None:
        """Applies changes until stopped; only RuleOffsetLost ends it sooner."""
        with contextlib.suppress(Stopping):  # asked to stop while failing
            while not stop.is_set():
                await self.poll(stop)

    async def poll(self, stop: asyncio.Event) -> None:
        """Applies the next changes. A failure is retried; a lost offset is not (RuleOffsetLost)."""
        held = await retry_until_done(
            self._apply_next, self.settings, what="following rule.changed", stop=stop, on_failure=self._failed
        )
        if not held:
            raise RuleOffsetLost(f"rule.changed no longer holds offset {self.next_offset}, which the index needs next")
        self.failing = False

    async def _apply_next(self) -> bool:
        """Reads and applies the next changes; False when the log no longer holds the offset to read."""
        try:
            batch = await self.consumer.getmany(self.partition, timeout_ms=500, max_records=5000)
        except OffsetOutOfRangeError:
            return False
        for record in batch.get(self.partition, []):
            try:
                apply_change(self.index, decode_rule_changed(record))
            except InvalidEvent as error:
                # The rule-updater dead-letters it; here it is simply not a rule.
                log.warning("ignoring invalid rule change at offset %d: %s", record.offset, error)
            self.next_offset = record.offset + 1
        return True

    def _failed(self, _: BaseException) -> None:
        self.failing = True
        # Records fetched but not applied are fetched again by the next attempt.
        self.consumer.seek(self.partition, self.next_offset)

    async def stop(self) -> None:
        await self.consumer.stop()


async def load_index(
    client: redis.Redis, settings: Settings, stop: asyncio.Event | None = None
) -> tuple[RuleIndex, int, bool]:
    """The index of the snapshot (rebuilt from Postgres if need be), the first `rule.changed`
    offset it does not cover, and whether the snapshot was rebuilt.

    The cyclic garbage collector is paused meanwhile (a million new objects would trigger it
    over and over), and the index is then frozen out of its reach: it lives as long as the
    process, and later full collections need not walk it."""
    gc.disable()
    try:
        loaded, rebuilt = await snapshot.load_or_rebuild(client, settings, log, stop=stop, convert=rule_fields)
        index = RuleIndex()
        index.load(loaded.rules)
    finally:
        gc.enable()
    gc.freeze()
    return index, loaded.next_offset, rebuilt


async def warm_index(settings: Settings, stop: asyncio.Event) -> tuple[RuleIndex, int]:
    """The index from the snapshot (or a rebuild), and the first offset it does not cover."""
    client = redis.from_url(settings.redis_url)
    try:
        index, next_offset, rebuilt = await load_index(client, settings, stop)
    finally:
        await client.aclose()
    log.info("warmed %d rules from the %s, up to rule.changed offset %d",
             len(index), "rebuilt snapshot" if rebuilt else "snapshot", next_offset)
    return index, next_offset


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
    index, next_offset = await warm_index(settings, lifecycle.stop)
    follower = RuleFollower(settings, index, next_offset)
    consumer = make_consumer(settings, GROUP, topics.ALERTS_NEW)
    producer = make_producer(settings)
    try:
        await follower.start(lifecycle.stop)
        await start_clients(settings, producer, consumer, stop=lifecycle.stop)
        following = asyncio.create_task(follower.follow(lifecycle.stop))
        # follow() ends early only on RuleOffsetLost. The evaluator then stops, rather than
        # match with an index that no longer follows, and exits with that error: a restart
        # warms again, from a snapshot the log holds (rebuilt if need be).
        following.add_done_callback(lambda _: lifecycle.stop.set())
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
            lifecycle.healthy = lambda: worker.last_batch_ok and not follower.failing
            await worker.run()
        finally:
            lifecycle.stop.set()
            await following
    finally:
        await consumer.stop()
        await producer.stop()
        await follower.stop()


def main() -> None:
    run_service("evaluator", Settings(), run)


if __name__ == "__main__":
    main()
