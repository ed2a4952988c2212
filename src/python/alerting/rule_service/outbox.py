"""The transactional outbox of `rule.changed`: changes of rules and of source grants.

Writers add a change in the transaction that makes it, holding a transaction-level
advisory lock, so outbox seqs are assigned in commit order. One relay (the holder of a
session-level advisory lock, across all rule-service instances) publishes unpublished
rows in seq order and then marks them published. A crash between commit and publish
leaves the row unpublished for the next relay; a crash between publish and marking
publishes it twice. The repeats are harmless: the rule-updater's Lua script and every
evaluator's index skip a change whose seq is not above the newest they applied
(changelog.applies).

The relay also counts the rows not published yet (`alerting_outbox_unpublished`), whether
or not Kafka can be reached, and whether or not it is the instance that relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Gauge

from alerting.common import db, topics
from alerting.common.kafka import OutgoingMessage, publish_all, start_clients
from alerting.common.retry import Stopping
from alerting.common.settings import RuleServiceSettings
from alerting.rules.changelog import change_key
from alerting.v1 import events_pb2, rule_pb2

log = logging.getLogger(__name__)

WRITER_LOCK = 7_401_001
RELAY_LOCK = 7_401_002
BATCH = 500

OUTBOX_UNPUBLISHED = Gauge(
    "alerting_outbox_unpublished",
    "Rule changes committed to rule_outbox and not yet published to rule.changed (the whole table's).",
)
# An index-only count over rule_outbox_unpublished_idx, a partial index of exactly these rows.
UNPUBLISHED = "SELECT count(*) FROM rule_outbox WHERE published_at IS NULL"


async def add_change(
    connection: asyncpg.Connection,
    op: events_pb2.RuleChanged.Op.ValueType,
    rule_id: str,
    client_id: str,
    rule: rule_pb2.Rule | None,
    changed_by: str,
) -> None:
    """Record a rule's change, made with the API key `changed_by`, inside the caller's transaction."""
    change = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, op=op, rule_id=rule_id, client_id=client_id,
                                    changed_by=changed_by)
    if rule is not None:
        change.rule.CopyFrom(rule)
    await _record(connection, change)


async def add_grant_change(
    connection: asyncpg.Connection,
    op: events_pb2.RuleChanged.Op.ValueType,
    grant: rule_pb2.SourceGrant,
    changed_by: str,
) -> None:
    """Record a grant given (GRANT) or revoked (REVOKE), inside the caller's transaction."""
    change = events_pb2.RuleChanged(schema_version=topics.SCHEMA_VERSION, op=op, client_id=grant.client_id,
                                    changed_by=changed_by, grant=grant)
    await _record(connection, change)


async def _record(connection: asyncpg.Connection, change: events_pb2.RuleChanged) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
    change.committed_at.GetCurrentTime()
    await connection.execute(
        "INSERT INTO rule_outbox (rule_id, client_id, op, payload) VALUES ($1, $2, $3, $4)",
        change.rule_id or None, change.client_id, events_pb2.RuleChanged.Op.Name(change.op).removeprefix("OP_"),
        change.SerializeToString(),
    )


def published_change(seq: int, payload: bytes) -> events_pb2.RuleChanged:
    change = events_pb2.RuleChanged.FromString(payload)
    change.seq = seq
    return change


# Published rows kept for this long are deleted, a batch at a time: the log has them.
PURGE = """
DELETE FROM rule_outbox WHERE seq IN (
    SELECT seq FROM rule_outbox WHERE published_at < now() - make_interval(secs => $1) ORDER BY seq LIMIT $2)
"""


class OutboxRelay:
    def __init__(
        self,
        settings: RuleServiceSettings,
        producer: AIOKafkaProducer,
        poll_seconds: float = 1.0,
        retention_seconds: float = 7 * 24 * 3600.0,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.poll_seconds = poll_seconds
        self.retention_seconds = retention_seconds
        self.wakeup = asyncio.Event()
        self.producer_started = False
        # Whether the relay's last statement reached Postgres (the rule-service's readiness).
        self.reaches_database = False
        self.counted_at = float("-inf")

    def wake(self) -> None:
        self.wakeup.set()

    async def publish_pending(self, connection: asyncpg.Connection) -> int:
        rows = await connection.fetch(
            "SELECT seq, payload FROM rule_outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1", BATCH
        )
        if not rows:
            return 0
        topic = self.settings.topic(topics.RULE_CHANGED)
        changes = [published_change(row["seq"], row["payload"]) for row in rows]
        await publish_all(
            self.producer,
            [OutgoingMessage(topic, change.SerializeToString(), key=change_key(change).encode()) for change in changes],
        )
        await connection.execute(
            "UPDATE rule_outbox SET published_at = now() WHERE seq = ANY($1::bigint[])", [row["seq"] for row in rows]
        )
        return len(rows)

    async def purge_published(self, connection: asyncpg.Connection) -> int:
        """Delete one batch of rows published longer ago than the retention; how many."""
        result = await connection.execute(PURGE, self.retention_seconds, BATCH)
        return int(result.split()[-1])

    async def count_unpublished(self, connection: asyncpg.Connection) -> int:
        """Refresh the backlog gauge; the number of rows not published yet."""
        count = int(await connection.fetchval(UNPUBLISHED))
        OUTBOX_UNPUBLISHED.set(count)
        self.counted_at = time.monotonic()
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until stopped; errors are retried after a pause, never skipped. The
        producer is started here, beside the loop, so the gRPC API serves (and commits
        changes to the outbox) while Kafka is still out of reach, and the backlog is counted
        meanwhile."""
        starting = asyncio.create_task(self._start_producer(stop))
        try:
            await self._relay_until_stopped(stop)
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting

    async def _start_producer(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(Stopping):
            await start_clients(self.settings, self.producer, stop=stop)
            self.producer_started = True
            self.wake()

    async def _relay_until_stopped(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                connection = await db.connect(self.settings, db.DatabaseRole.CONTROL_PLANE)
            except (OSError, asyncpg.PostgresError) as error:
                self.reaches_database = False
                log.warning("outbox relay cannot reach Postgres, retrying: %r", error)
                await self._pause(stop)
                continue
            self.reaches_database = True
            try:
                await self._relay_while_leader(connection, stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self.reaches_database = False
                log.warning("outbox relay failed, retrying: %r", error)
                await self._pause(stop)
            except Exception as error:  # Kafka errors: publish again after a pause
                log.warning("outbox relay could not publish, retrying: %r", error)
                await self._pause(stop)
            finally:
                await connection.close()

    async def _relay_while_leader(self, connection: asyncpg.Connection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await connection.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                break
            await self.count_unpublished(connection)
            await self._pause(stop)  # another instance relays
        while not stop.is_set():
            self.wakeup.clear()  # before reading, so a commit during the read wakes the next pause
            # Nothing is published until the producer has started (Kafka reached once).
            published = await self.publish_pending(connection) if self.producer_started else 0
            # Counted before each pause, and once a poll while a long backlog is published.
            if published < BATCH or time.monotonic() - self.counted_at >= self.poll_seconds:
                await self.count_unpublished(connection)
            if published < BATCH:
                await self.purge_published(connection)
                await self._pause(stop)

    async def _pause(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self.wakeup.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
