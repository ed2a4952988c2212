"""Records the Kafka client cannot parse, found so that a worker can pass them.

aiokafka parses a fetched response whole: one record it cannot parse (a header key that is
not UTF-8, which other producers can write) makes every `getmany()` raise, and hides the
good records fetched with it, forever. A reader outside the group, that fetches one record
batch at a time (the broker always returns at least one whole batch), finds the readable
records before it and the run of offsets it cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CorruptRecordException

from alerting.common.kafka.outages import is_outage

FETCH_WAIT_MS = 2000


@dataclass(frozen=True)
class Unreadable:
    """In one partition, from the position a worker read up to: the records it can read,
    then the offsets [first, end) it cannot."""

    readable: Sequence[ConsumerRecord]
    first: int
    end: int


async def find_unreadable(
    client_options: Mapping[str, Any], tp: TopicPartition, position: int, fetch_bytes: int
) -> Unreadable | None:
    """The first run of unreadable offsets of `tp` from `position`, within the `fetch_bytes`
    one fetch of the worker's consumer covers; None when those read well. `client_options`
    say where the broker is and how to log in."""
    reader = AIOKafkaConsumer(**client_options, enable_auto_commit=False, max_partition_fetch_bytes=1,
                              fetch_max_bytes=1)
    await reader.start()
    try:
        reader.assign([tp])
        log_end = (await reader.end_offsets([tp]))[tp]
        readable: list[ConsumerRecord] = []
        offset = position
        covered = 0
        while offset < log_end and covered <= fetch_bytes:
            batch = await _fetch_one_batch(reader, tp, offset)
            if batch is None:  # unreadable from `offset`: find where readable records start again
                end = offset + 1
                while end < log_end and await _fetch_one_batch(reader, tp, end) is None:
                    end += 1
                return Unreadable(readable, offset, end)
            if not batch:
                return None
            readable += batch
            covered += sum(len(record.value or b"") + len(record.key or b"") for record in batch)
            offset = batch[-1].offset + 1
        return None
    finally:
        await reader.stop()


async def _fetch_one_batch(reader: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> list[ConsumerRecord] | None:
    """The readable records of the record batch that holds `offset` (from `offset` on), [] at
    the log's end, None when the client cannot parse that batch."""
    reader.seek(tp, offset)
    try:
        fetched = await reader.getmany(tp, timeout_ms=FETCH_WAIT_MS)
    except Exception as error:
        if is_outage(error) and not isinstance(error, CorruptRecordException):
            raise
        return None
    return list(fetched.get(tp, []))
