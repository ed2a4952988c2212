"""rule-updater: keeps the Redis rule snapshot current from `rule.changed`."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis
from aiokafka import ConsumerRecord

from alerting.v1 import events_pb2
from common import topics
from common.failpoints import failpoint
from common.kafka import BatchWorker, Delivery, make_consumer, make_producer, start_clients
from common.service import Lifecycle, run_service
from common.settings import Settings
from rule_updater import snapshot
from rule_updater.changes import decode_rule_changed

log = logging.getLogger("rule_updater")
GROUP = "rule-updater"


class SnapshotWriter:
    """The durable step: a batch of changes onto the snapshot, or, when the snapshot cannot
    take them (see snapshot.SnapshotIncomplete), a rebuild of it from Postgres."""

    def __init__(self, client: redis.Redis, settings: Settings, stop: asyncio.Event) -> None:
        self.client = client
        self.settings = settings
        self.stop = stop
        # The offsets read since a batch was last applied. They include dead-lettered records,
        # which never reach handle(): the snapshot covers them too, or the batch after them
        # would look like a gap.
        self.first_read: int | None = None
        self.next_read = 0

    def decode(self, record: ConsumerRecord) -> events_pb2.RuleChanged:
        if self.first_read is None:
            self.first_read = record.offset
        self.next_read = record.offset + 1
        return decode_rule_changed(record)

    async def handle(self, deliveries: list[Delivery[events_pb2.RuleChanged]]) -> None:
        changes = [delivery.message for delivery in deliveries]
        try:
            async with snapshot.lock(self.client, self.settings):
                applied = await snapshot.apply_changes(
                    self.client, self.settings, changes, self.first_read, self.next_read
                )
            log.info("applied %d of %d rule changes", applied, len(changes))
        except snapshot.SnapshotIncomplete as error:
            log.warning("rule snapshot cannot take rule.changed offsets %d-%d (%s): rebuilding it from Postgres",
                        self.first_read, self.next_read - 1, error)
            # Outside the lock, which the rebuild takes. The rebuild reads the log's end first,
            # and these changes were read before that, so it covers them.
            await snapshot.rebuild_from_database(self.client, self.settings, stop=self.stop)
        failpoint("after_db_write")
        self.first_read = None


async def run(settings: Settings, lifecycle: Lifecycle) -> None:
    client = redis.from_url(settings.redis_url)
    consumer = make_consumer(settings, GROUP, topics.RULE_CHANGED)
    producer = make_producer(settings)
    try:
        _, rebuilt = await snapshot.load_or_rebuild(client, settings, log, stop=lifecycle.stop)
        log.info("rule snapshot %s", "rebuilt from Postgres" if rebuilt else "present")
        await start_clients(settings, consumer, producer, stop=lifecycle.stop)
        writer = SnapshotWriter(client, settings, lifecycle.stop)
        worker = BatchWorker(
            service="rule-updater",
            settings=settings,
            consumer=consumer,
            producer=producer,
            decode=writer.decode,
            handle=writer.handle,
            stop=lifecycle.stop,
        )
        lifecycle.healthy = lambda: worker.last_batch_ok
        await worker.run()
    finally:
        await consumer.stop()
        await producer.stop()
        await client.aclose()


def main() -> None:
    run_service("rule-updater", Settings(), run)


if __name__ == "__main__":
    main()
