"""rule-updater: keeps the Redis rule snapshot current from `rule.changed`."""

from __future__ import annotations

import logging

import redis.asyncio as redis

from alerting.v1 import events_pb2
from common import topics
from common.failpoints import failpoint
from common.kafka import BatchWorker, Delivery, make_consumer, make_producer
from common.service import Lifecycle, run_service
from common.settings import Settings
from rule_updater import snapshot
from rule_updater.changes import decode_rule_changed

log = logging.getLogger("rule_updater")
GROUP = "rule-updater"


async def run(settings: Settings, lifecycle: Lifecycle) -> None:
    client = redis.from_url(settings.redis_url)
    consumer = make_consumer(settings, GROUP, topics.RULE_CHANGED)
    producer = make_producer(settings)
    try:
        _, rebuilt = await snapshot.load_or_rebuild(client, settings, log)
        log.info("rule snapshot %s", "rebuilt from Postgres" if rebuilt else "present")

        async def handle(deliveries: list[Delivery[events_pb2.RuleChanged]]) -> None:
            next_offset = max(d.record.offset for d in deliveries) + 1
            async with snapshot.lock(client, settings):
                applied = await snapshot.apply_changes(client, settings, [d.message for d in deliveries], next_offset)
            failpoint("after_db_write")
            log.info("applied %d of %d rule changes", applied, len(deliveries))

        await consumer.start()
        await producer.start()
        worker = BatchWorker(
            service="rule-updater",
            settings=settings,
            consumer=consumer,
            producer=producer,
            decode=decode_rule_changed,
            handle=handle,
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
