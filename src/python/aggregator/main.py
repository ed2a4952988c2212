"""aggregator: `alerts.matched` → one row per (client, alert) in `notifications` →
`notifications.ready`.

The insert is an upsert that returns every row of the batch still PENDING, new or not,
and each is published again: a batch redelivered after a crash between the insert and
the publish therefore republishes what it had inserted, and no row is left PENDING. A
sweeper republishes rows left PENDING for long as well (belt and braces).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
from opentelemetry import trace

from aggregator.batch import NotificationRow, decode_alert_matched, insert_arguments, unique_rows
from alerting.v1 import events_pb2
from common import telemetry, topics
from common.db import create_pool
from common.failpoints import failpoint
from common.kafka import (
    BatchWorker,
    Delivery,
    OutgoingMessage,
    make_consumer,
    make_producer,
    publish_all,
    start_clients,
)
from common.service import Lifecycle, run_service
from common.settings import Settings

log = logging.getLogger("aggregator")
tracer = trace.get_tracer("aggregator")
GROUP = "aggregator"


class AggregatorSettings(Settings):
    # Rows PENDING for this long since their last publish are published again.
    sweep_after_seconds: float = 60.0
    sweep_interval_seconds: float = 15.0


UPSERT = """
INSERT INTO notifications AS n (client_id, alert_id, rule_ids, emails, alert, trace_context, published_at)
SELECT client_id, alert_id, string_to_array(rule_ids, ',')::uuid[], string_to_array(emails, ','),
       alert, trace_context, now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
     AS batch(client_id, alert_id, rule_ids, emails, alert, trace_context)
ON CONFLICT (client_id, alert_id) DO UPDATE SET published_at = now()
WHERE n.status = 'PENDING'
RETURNING n.notification_id, n.client_id, n.alert_id
"""

STRANDED = """
UPDATE notifications SET published_at = now()
WHERE notification_id IN (
    SELECT notification_id FROM notifications
    WHERE status = 'PENDING' AND published_at < now() - make_interval(secs => $1)
    ORDER BY published_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
RETURNING notification_id, client_id, alert_id, trace_context
"""


def ready_message(settings: Settings, notification_id, client_id, alert_id, context) -> OutgoingMessage:
    event = events_pb2.NotificationReady(
        schema_version=topics.SCHEMA_VERSION,
        notification_id=str(notification_id),
        client_id=str(client_id),
        alert_id=alert_id,
    )
    return OutgoingMessage(
        settings.topic(topics.NOTIFICATIONS_READY),
        event.SerializeToString(),
        key=str(client_id).encode(),
        trace_context=context,
    )


class NotificationRecorder:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer) -> None:
        self.settings = settings
        self.pool = pool
        self.producer = producer

    async def handle(self, deliveries: list[Delivery[events_pb2.AlertMatched]]) -> None:
        rows: list[NotificationRow] = []
        contexts = {}
        for delivery in deliveries:
            event = delivery.message
            client_id = str(uuid.UUID(event.client_id))  # as Postgres returns it
            with tracer.start_as_current_span(
                f"{delivery.record.topic} process",
                context=delivery.trace_context,
                kind=trace.SpanKind.CONSUMER,
                attributes=telemetry.messaging_attributes(delivery.record),
            ) as span:
                span.set_attribute("alerting.alert_id", event.alert.alert_id)
                span.set_attribute("alerting.client_id", event.client_id)
                rows.append(
                    NotificationRow(
                        client_id=client_id,
                        alert_id=event.alert.alert_id,
                        rule_ids=tuple(event.rule_ids),
                        emails=tuple(event.emails),
                        alert=event.alert.SerializeToString(),
                        trace_context=telemetry.current_traceparent(),
                    )
                )
                contexts.setdefault((client_id, event.alert.alert_id), trace.set_span_in_context(span))
        pending = await self.pool.fetch(UPSERT, *insert_arguments(unique_rows(rows)))
        failpoint("after_db_write")
        await publish_all(
            self.producer,
            [
                ready_message(
                    self.settings, row["notification_id"], row["client_id"], row["alert_id"],
                    contexts[(str(row["client_id"]), row["alert_id"])],
                )
                for row in pending
            ],
        )
        failpoint("after_publish")

    async def sweep(self, after_seconds: float) -> int:
        """Publish rows PENDING since long ago again; returns how many."""
        async with self.pool.acquire() as connection, connection.transaction():
            stranded = await connection.fetch(STRANDED, after_seconds)
            await publish_all(
                self.producer,
                [
                    ready_message(
                        self.settings, row["notification_id"], row["client_id"], row["alert_id"],
                        telemetry.context_from_traceparent(row["trace_context"]),
                    )
                    for row in stranded
                ],
            )
        if stranded:
            log.warning("republished %d notifications left PENDING", len(stranded))
        return len(stranded)


async def sweep_forever(recorder: NotificationRecorder, settings: AggregatorSettings, stop: asyncio.Event) -> None:
    """Sweep every interval until stopped. Whatever fails one sweep (Postgres, Kafka, a bug) is
    logged and the next interval tries again: the task must outlive any one error."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)
        except TimeoutError:
            pass
        if stop.is_set():
            return
        try:
            await recorder.sweep(settings.sweep_after_seconds)
        except Exception as error:
            log.warning("sweep failed, trying again later: %r", error)


async def record_and_sweep(settings: AggregatorSettings, lifecycle: Lifecycle, consumer, producer,
                           recorder: NotificationRecorder) -> None:
    """Consume `alerts.matched` until stopped, with the sweeper running beside the worker."""
    sweeper = asyncio.create_task(sweep_forever(recorder, settings, lifecycle.stop))
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
    lifecycle.healthy = lambda: worker.last_batch_ok and not sweeper.done()
    try:
        await worker.run()
    finally:
        lifecycle.stop.set()
        await sweeper


async def run(settings: AggregatorSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, stop=lifecycle.stop)
    consumer = make_consumer(settings, GROUP, topics.ALERTS_MATCHED)
    producer = make_producer(settings)
    try:
        await start_clients(settings, producer, consumer, stop=lifecycle.stop)
        await record_and_sweep(settings, lifecycle, consumer, producer, NotificationRecorder(settings, pool, producer))
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()


def main() -> None:
    run_service("aggregator", AggregatorSettings(), run)


if __name__ == "__main__":
    main()
