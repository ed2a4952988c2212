"""The aggregator's durable step and its sweeper: one row per (client, alert) in
`notifications`, and a `notifications.ready` message for every row still PENDING.

The insert is an upsert that returns every row of the batch still PENDING, new or not,
and each is published again: a batch redelivered after a crash between the insert and
the publish therefore republishes what it had inserted, and no row is left PENDING. A
sweeper republishes rows left PENDING for long as well (belt and braces).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context

from alerting.aggregator.batch import NotificationRow, insert_arguments, unique_rows
from alerting.common import telemetry, topics
from alerting.common.failpoints import failpoint
from alerting.common.kafka import Delivery, OutgoingMessage, publish_all
from alerting.common.settings import Settings
from alerting.v1 import events_pb2

log = logging.getLogger(__name__)


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


def ready_message(
    settings: Settings, notification_id: object, client_id: object, alert_id: str, context: otel_context.Context
) -> OutgoingMessage:
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
    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.pool = pool
        self.producer = producer

    async def handle(self, deliveries: list[Delivery[events_pb2.AlertMatched]]) -> None:
        rows: list[NotificationRow] = []
        contexts: dict[tuple[str, str], otel_context.Context] = {}
        for delivery in deliveries:
            event = delivery.message
            client_id = str(uuid.UUID(event.client_id))  # as Postgres returns it
            delivery.span.set_attribute("alerting.alert_id", event.alert.alert_id)
            delivery.span.set_attribute("alerting.client_id", event.client_id)
            context = delivery.trace_context
            rows.append(
                NotificationRow(
                    client_id=client_id,
                    alert_id=event.alert.alert_id,
                    rule_ids=tuple(event.rule_ids),
                    emails=tuple(event.emails),
                    alert=event.alert.SerializeToString(),
                    trace_context=telemetry.traceparent(context),
                )
            )
            contexts.setdefault((client_id, event.alert.alert_id), context)
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


class Sweeper(Protocol):
    async def sweep(self, after_seconds: float) -> int: ...


async def sweep_forever(
    recorder: Sweeper, stop: asyncio.Event, *, interval_seconds: float, after_seconds: float
) -> None:
    """Sweep every interval until stopped. Whatever fails one sweep (Postgres, Kafka, a bug) is
    logged and the next interval tries again: the task must outlive any one error."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval_seconds)
        except TimeoutError:
            pass
        if stop.is_set():
            return
        try:
            await recorder.sweep(after_seconds)
        except Exception as error:
            log.warning("sweep failed, trying again later: %r", error)
