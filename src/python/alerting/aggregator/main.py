"""aggregator: `alerts.matched` → one row per (client, alert) in `notifications` → `notifications.ready`.
Wiring only: the durable step and the sweeper are recorder.py, decoding and a batch's insert batch.py."""

from __future__ import annotations

from functools import partial

from aiokafka import AIOKafkaProducer

from alerting.aggregator.batch import decode_alert_matched
from alerting.aggregator.recorder import NotificationRecorder, SenderProgress, sweep_forever
from alerting.common import topics
from alerting.common.db import DatabaseRole, create_pool
from alerting.common.kafka import Companion, Wiring, run_worker
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import AggregatorSettings
from alerting.v1.events_pb2 import AlertMatched


async def run(settings: AggregatorSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, DatabaseRole.DATA_PLANE, stop=lifecycle.stop)
    progress = SenderProgress(settings)

    def wire(producer: AIOKafkaProducer) -> Wiring[AlertMatched]:
        recorder = NotificationRecorder(settings, pool, producer, progress)
        # The sweeper publishes again what was recorded but never reached the sender.
        sweeping = partial(sweep_forever, recorder, interval_seconds=settings.sweep_interval_seconds,
                           after_seconds=settings.sweep_after_seconds)
        return Wiring(recorder.handle, [Companion(sweeping)])

    await run_worker(settings, lifecycle, topics.AGGREGATOR, decode_alert_matched, wire,
                     closing=[progress.stop, pool.close])


def main() -> None:
    run_service("aggregator", AggregatorSettings(), run)


if __name__ == "__main__":
    main()
