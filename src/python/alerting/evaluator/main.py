"""evaluator: `alerts.new` → match against the in-memory rule index → `alerts.matched`.

Wiring only: the warm start (warm_start.py), the rule follower (follower.py), the
matching step (evaluation.py) and the index (matcher.py) live beside it.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alerting.common import topics
from alerting.common.kafka import BatchWorker, worker_clients
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import Settings
from alerting.evaluator.alerts import decode_alert_new
from alerting.evaluator.evaluation import AlertEvaluator
from alerting.evaluator.follower import RuleFollower
from alerting.evaluator.warm_start import warm_index


async def run(settings: Settings, lifecycle: Lifecycle) -> None:
    warm = await warm_index(settings, lifecycle.stop)
    follower = RuleFollower(settings, warm.index, warm.next_offset, warm.version)
    try:
        async with worker_clients(settings, topics.EVALUATOR_GROUP, topics.ALERTS_NEW, lifecycle.stop) as (
            consumer, producer
        ):
            await follower.start(lifecycle.stop)
            await evaluate(settings, lifecycle, follower, consumer, producer)
    finally:
        await follower.stop()


async def evaluate(
    settings: Settings,
    lifecycle: Lifecycle,
    follower: RuleFollower,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
) -> None:
    """Match alerts until stopped, with the follower keeping the index current beside."""
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
            handle=AlertEvaluator(settings, follower.index, producer).handle,
            stop=lifecycle.stop,
        )
        lifecycle.ready = lambda: worker.ready() and not follower.failing
        await worker.run()
    finally:
        lifecycle.stop.set()
        await following


def main() -> None:
    run_service("evaluator", Settings(), run)


if __name__ == "__main__":
    main()
