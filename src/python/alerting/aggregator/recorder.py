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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import context as otel_context
from prometheus_client import Gauge

from alerting.aggregator.batch import NotificationRow, insert_arguments, unique_rows
from alerting.common import telemetry, topics
from alerting.common.failpoints import failpoint
from alerting.common.kafka import Delivery, OutgoingMessage, kafka_client_options, publish_all
from alerting.common.settings import KafkaSettings
from alerting.v1 import events_pb2

log = logging.getLogger(__name__)

NOTIFICATIONS = Gauge(
    "alerting_notifications",
    "Notifications by status (PENDING, FAILED), counted by the aggregator's sweeper (the whole table's).",
    ["status"],
)
# Cheap however long the delivery history: PENDING rows are an index-only scan of their partial
# index (notifications_due_idx); FAILED rows are found through notifications_client_status_idx,
# one probe per tenant (a loose index scan over client_id: PostgreSQL 15 has no skip scan) plus
# the FAILED entries. SENT rows, the whole history, are not counted: that cost grows without bound.
STATUS_COUNTS = """
WITH RECURSIVE tenants(client_id) AS (
    (SELECT client_id FROM notifications ORDER BY client_id LIMIT 1)
    UNION ALL
    SELECT (SELECT n.client_id FROM notifications n WHERE n.client_id > t.client_id ORDER BY n.client_id LIMIT 1)
    FROM tenants t WHERE t.client_id IS NOT NULL
)
SELECT (SELECT count(*) FROM notifications WHERE status = 'PENDING') AS pending,
       (SELECT count(*) FROM tenants t JOIN notifications n ON n.client_id = t.client_id AND n.status = 'FAILED')
           AS failed
"""


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

# Rows no sender ever attempted (its retries are the sender's own), not leased, published
# before the cutoff: their notifications.ready message was lost, not merely queued.
STRANDED = """
UPDATE notifications SET published_at = now()
WHERE notification_id IN (
    SELECT notification_id FROM notifications
    WHERE status = 'PENDING' AND attempts = 0 AND lease_until IS NULL AND digest_id IS NULL AND published_at < $1
    ORDER BY published_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
RETURNING notification_id, client_id, alert_id, trace_context
"""


@dataclass(frozen=True)
class ReadyMark:
    """Where `notifications.ready` ended at a moment (by the database's clock)."""

    taken_at: datetime
    end_offsets: dict[TopicPartition, int]


class SenderProgress:
    """How far the sender's consumer group has read `notifications.ready`: a row never
    attempted although the sender has read past every message published before it is
    stuck; one behind the group's position is only queued."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.topic = settings.topic(topics.NOTIFICATIONS_READY)
        self.group = settings.topic(topics.SENDER_GROUP)
        self.reader = AIOKafkaConsumer(**kafka_client_options(settings), enable_auto_commit=False)
        self.admin = AIOKafkaAdminClient(**kafka_client_options(settings))
        self.started = False

    async def stop(self) -> None:
        if self.started:
            await self.reader.stop()
            await self.admin.close()

    async def mark(self, pool: asyncpg.Pool) -> ReadyMark:
        if not self.started:  # here, not at start-up: the sweeper outlives a Kafka outage
            await self.reader.start()
            await self.admin.start()
            self.started = True
        await self.reader.topics()  # refreshes the metadata, the topic's partitions among it
        partitions = [TopicPartition(self.topic, p) for p in sorted(self.reader.partitions_for_topic(self.topic) or ())]
        taken_at = await pool.fetchval("SELECT now()")
        return ReadyMark(taken_at, await self.reader.end_offsets(partitions))

    async def consumed_past(self, mark: ReadyMark) -> bool:
        committed = await self.admin.list_consumer_group_offsets(self.group)
        return all(tp in committed and committed[tp].offset >= end for tp, end in mark.end_offsets.items() if end)


def ready_message(
    settings: KafkaSettings, notification_id: object, client_id: object, alert_id: str, context: otel_context.Context
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
    def __init__(
        self, settings: KafkaSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, progress: SenderProgress
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.producer = producer
        self.progress = progress
        self.previous_mark: ReadyMark | None = None

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

    async def count_statuses(self) -> None:
        """Refresh the notification status gauges."""
        row = await self.pool.fetchrow(STATUS_COUNTS)
        NOTIFICATIONS.labels("PENDING").set(row["pending"])
        NOTIFICATIONS.labels("FAILED").set(row["failed"])

    async def sweep(self, after_seconds: float) -> int:
        """Publish again the rows that are stuck: never attempted, and published at least
        `after_seconds` before a mark that the sender has since read past. Returns how many.
        The status gauges are refreshed first, whether or not Kafka answers."""
        await self.count_statuses()
        mark = await self.progress.mark(self.pool)
        previous, self.previous_mark = self.previous_mark, mark
        if previous is None or not await self.progress.consumed_past(previous):
            return 0
        cutoff = previous.taken_at - timedelta(seconds=after_seconds)
        async with self.pool.acquire() as connection, connection.transaction():
            stranded = await connection.fetch(STRANDED, cutoff)
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
