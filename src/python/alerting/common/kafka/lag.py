"""The consumer lag gauges of a worker's partitions: a worker hook (worker.Middleware) that
measures them on a timer beside the loop and after each commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from alerting.common import telemetry
from alerting.common.kafka.worker import Middleware

log = logging.getLogger(__name__)


class ConsumerLag(Middleware[Any]):
    """The lag of the partitions `consumer` owns, by service, topic and partition.

    Every `interval_seconds` it measures the lag, drops the lag of the partitions it no
    longer owns, and notes whether the broker answered: the worker is ready only while it
    does. After each commit it sets the lag from the partitions' high water marks. A
    stopped worker owns no partition: its series go."""

    def __init__(self, service: str, consumer: AIOKafkaConsumer, interval_seconds: float) -> None:
        self.service = service
        self.consumer = consumer
        self.interval_seconds = interval_seconds
        # Whether the broker answered the last measurement.
        self.broker_reachable = True
        # The partitions whose lag this worker reports.
        self.partitions: set[TopicPartition] = set()

    def ready(self) -> bool:
        return self.broker_reachable

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        measuring = asyncio.create_task(self.measure_forever())
        try:
            yield
        finally:
            measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await measuring
            self.drop(self.partitions)

    def after_commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        owned = self.consumer.assignment()  # a rebalance may have come during the commit
        for tp, offset in offsets.items():
            highwater = self.consumer.highwater(tp) if tp in owned else None
            if highwater is not None:
                self.report(tp, highwater - offset)

    async def measure_forever(self) -> None:
        """Measure the lag every interval, until cancelled. A measurement the broker does not
        answer in time makes the worker unready until one succeeds."""
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await asyncio.wait_for(self.measure(), max(2 * self.interval_seconds, 10.0))
            except Exception as error:  # the broker out of reach, or a timeout
                if self.broker_reachable:
                    log.warning("%s cannot measure its consumer lag, the broker does not answer: %r",
                                self.service, error)
                self.broker_reachable = False
            else:
                if not self.broker_reachable:
                    log.info("%s reaches the broker again", self.service)
                self.broker_reachable = True

    async def measure(self) -> None:
        """Set the lag of every partition the consumer owns (end offset minus the group's
        committed offset, or minus the log start before any commit), and drop the lag of
        partitions it reported but no longer owns (lost in a rebalance)."""
        owned = set(self.consumer.assignment())
        self.drop(self.partitions - owned)
        partitions = sorted(owned)
        if not partitions:
            return
        ends = await self.consumer.end_offsets(partitions)
        committed = dict(zip(
            partitions, await asyncio.gather(*(self.consumer.committed(tp) for tp in partitions)), strict=True))
        never_committed = [tp for tp in partitions if committed[tp] is None]
        starts = await self.consumer.beginning_offsets(never_committed) if never_committed else {}
        still_owned = self.consumer.assignment()  # a rebalance may have come meanwhile
        self.drop(self.partitions - still_owned)
        for tp in partitions:
            if tp in still_owned:
                done = committed[tp] if committed[tp] is not None else starts[tp]
                self.report(tp, ends[tp] - done)

    def report(self, tp: TopicPartition, lag: int) -> None:
        telemetry.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(lag, 0))
        self.partitions.add(tp)

    def drop(self, partitions: set[TopicPartition]) -> None:
        """Remove these partitions' lag series: another worker reports them now."""
        for tp in list(partitions):
            with contextlib.suppress(KeyError):
                telemetry.CONSUMER_LAG.remove(self.service, tp.topic, str(tp.partition))
            self.partitions.discard(tp)
