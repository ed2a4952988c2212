"""aggregator: `alerts.matched` → one row per (client, alert) in `notifications` →
`notifications.ready`.

Wiring only: the durable step and the sweeper are recorder.py, decoding and the shape
of a batch's insert batch.py.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import Field

from alerting.aggregator.batch import decode_alert_matched
from alerting.aggregator.recorder import NotificationRecorder, SenderProgress, sweep_forever
from alerting.common import topics
from alerting.common.db import DatabaseRole, create_pool
from alerting.common.kafka import BatchWorker, worker_clients
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import Settings


class AggregatorSettings(Settings):
    """The aggregator's own."""

    sweep_after_seconds: float = Field(default=60.0, description=(
        "A notification never attempted, published this long before a point the sender has read past,"
        " is published again (its message was lost)."))
    sweep_interval_seconds: float = Field(default=15.0, description=(
        "How often the sweeper runs and counts `PENDING` and `FAILED` notifications."))


async def record_and_sweep(
    settings: AggregatorSettings,
    lifecycle: Lifecycle,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    recorder: NotificationRecorder,
) -> None:
    """Consume `alerts.matched` until stopped, with the sweeper running beside the worker."""
    sweeper = asyncio.create_task(sweep_forever(
        recorder, lifecycle.stop,
        interval_seconds=settings.sweep_interval_seconds, after_seconds=settings.sweep_after_seconds,
    ))
    worker = BatchWorker(
        service="aggregator",
        settings=settings,
        consumer=consumer,
        producer=producer,
        decode=decode_alert_matched,
        handle=recorder.handle,
        stop=lifecycle.stop,
    )
    # A sweeper that ended would leave stranded rows PENDING: that is unhealthy, not silent.
    lifecycle.ready = lambda: worker.ready() and not sweeper.done()
    lifecycle.alive = lambda: not sweeper.done()
    try:
        await worker.run()
    finally:
        lifecycle.stop.set()
        await sweeper


async def run(settings: AggregatorSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, DatabaseRole.DATA_PLANE, stop=lifecycle.stop)
    progress = SenderProgress(settings)
    try:
        async with worker_clients(settings, topics.AGGREGATOR_GROUP, topics.ALERTS_MATCHED, lifecycle.stop) as (
            consumer, producer
        ):
            recorder = NotificationRecorder(settings, pool, producer, progress)
            await record_and_sweep(settings, lifecycle, consumer, producer, recorder)
    finally:
        await progress.stop()
        await pool.close()


def main() -> None:
    run_service("aggregator", AggregatorSettings(), run)


if __name__ == "__main__":
    main()
