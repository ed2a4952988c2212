"""Keeping the rule index current: `rule.changed` applied from the exact offset the index
covers, outside any consumer group, so every evaluator sees every change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import ConsumerRecord
from aiokafka.errors import ConsumerStoppedError, OffsetOutOfRangeError

from alerting.common.kafka import MAX_PARTITION_FETCH_BYTES, kafka_client_options, start_clients
from alerting.common.kafka.unreadable import find_unreadable
from alerting.common.retry import Stopping, retry_until_done
from alerting.common.settings import KafkaSettings
from alerting.evaluator.alerts import indexed_grant, indexed_rule
from alerting.evaluator.matcher import RuleIndex
from alerting.rules.changelog import (
    DELETE,
    GRANT,
    UPSERT,
    applies,
    decode_rule_changed,
    rule_changed_consumer,
    rule_changed_partition,
)
from alerting.v1 import events_pb2

log = logging.getLogger(__name__)


def apply_change(index: RuleIndex, change: events_pb2.RuleChanged) -> None:
    if change.op == UPSERT:
        index.upsert(indexed_rule(change.rule))
    elif change.op == DELETE:
        index.delete(change.rule_id)
    elif change.op == GRANT:
        index.grant(indexed_grant(change.grant))
    else:
        index.revoke(indexed_grant(change.grant))


def apply_records(index: RuleIndex, records: Iterable[ConsumerRecord], last_seq: int) -> int:
    """Apply the changes of `records`, read in log order, that changelog.applies admits after
    `last_seq`, the newest seq applied; returns the newest seq applied after them. Any other
    record is no rule (the rule-updater dead-letters it) and is skipped."""
    for record in records:
        try:
            change = decode_rule_changed(record)
            if not applies(change.seq, last_seq):
                continue
        except Exception as error:  # decoding does no I/O: whatever it raises, the record causes
            log.warning("ignoring invalid rule change at offset %d: %r", record.offset, error)
            continue
        apply_change(index, change)
        last_seq = change.seq
    return last_seq


class RuleOffsetLost(Exception):
    """`rule.changed` no longer holds the offset the index needs next: no retry brings it back."""


class RuleFollower:
    """Applies `rule.changed` to the index from a given offset, catching up first. A failure
    is retried with backoff from the first offset not applied yet, so no change is skipped."""

    def __init__(self, settings: KafkaSettings, index: RuleIndex, next_offset: int, last_seq: int = 0) -> None:
        self.settings = settings
        self.index = index
        # The newest seq applied: what the next change's is checked against (changelog.applies).
        self.last_seq = last_seq
        self.partition = rule_changed_partition(settings)
        self.next_offset = next_offset
        self.consumer = rule_changed_consumer(settings)
        self.failing = False

    async def start(self, stop: asyncio.Event) -> None:
        await start_clients(self.settings, self.consumer, stop=stop)
        self.consumer.assign([self.partition])
        self.consumer.seek(self.partition, self.next_offset)
        end = (await self.consumer.end_offsets([self.partition]))[self.partition]
        while self.next_offset < end:
            await self.poll(stop)

    async def follow(self, stop: asyncio.Event) -> None:
        """Applies changes until stopped; only RuleOffsetLost ends it sooner."""
        with contextlib.suppress(Stopping):  # asked to stop while failing
            while not stop.is_set():
                await self.poll(stop)

    async def poll(self, stop: asyncio.Event) -> None:
        """Applies the next changes. A failure is retried; a lost offset is not (RuleOffsetLost)."""
        held = await retry_until_done(
            self._apply_next, self.settings, what="following rule.changed", stop=stop, on_failure=self._failed
        )
        if not held:
            raise RuleOffsetLost(f"rule.changed no longer holds offset {self.next_offset}, which the index needs next")
        self.failing = False

    async def _apply_next(self) -> bool:
        """Reads and applies the next changes; False when the log no longer holds the offset to read."""
        try:
            batch = await self.consumer.getmany(self.partition, timeout_ms=500, max_records=5000)
        except OffsetOutOfRangeError:
            return False
        except ConsumerStoppedError:
            raise
        except Exception as error:  # the client could not parse what it fetched
            return await self._pass_unparsable(error)
        records = batch.get(self.partition, [])
        if records:
            self.last_seq = apply_records(self.index, records, self.last_seq)
            self.next_offset = records[-1].offset + 1
        return True

    async def _pass_unparsable(self, error: Exception) -> bool:
        """Apply the changes before the records the client cannot parse, and pass those (the
        rule-updater dead-letters them: they are no rule); `error` when none explain it."""
        found = await find_unreadable(kafka_client_options(self.settings), self.partition, self.next_offset,
                                      MAX_PARTITION_FETCH_BYTES)
        if found is None:
            raise error
        log.warning("ignoring rule.changed offsets %d-%d, which the Kafka client cannot parse: %r",
                    found.first, found.end - 1, error)
        self.last_seq = apply_records(self.index, found.readable, self.last_seq)
        self.next_offset = found.end
        self.consumer.seek(self.partition, found.end)
        return True

    def _failed(self, _: BaseException) -> None:
        self.failing = True
        # Records fetched but not applied are fetched again by the next attempt.
        self.consumer.seek(self.partition, self.next_offset)

    async def stop(self) -> None:
        await self.consumer.stop()
