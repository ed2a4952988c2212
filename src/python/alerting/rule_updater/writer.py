"""The rule-updater's durable step: a batch of `rule.changed` onto the Redis snapshot."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis
from aiokafka import ConsumerRecord

from alerting.common.failpoints import failpoint
from alerting.common.kafka import Delivery, InvalidEvent
from alerting.common.settings import RuleRebuildSettings
from alerting.common.validation import InvalidField
from alerting.rules import snapshot
from alerting.rules.changelog import applies, decode_rule_changed
from alerting.rules.rebuild import rebuild_from_database
from alerting.v1 import events_pb2

log = logging.getLogger(__name__)


class SnapshotWriter:
    """The durable step: a batch of changes onto the snapshot, or, when the snapshot cannot
    take them (see snapshot.SnapshotIncomplete), a rebuild of it from Postgres."""

    def __init__(self, client: redis.Redis, settings: RuleRebuildSettings, stop: asyncio.Event, last_seq: int) -> None:
        self.client = client
        self.settings = settings
        self.stop = stop
        # The newest seq the snapshot holds or the changes read will apply: what the next
        # change's is checked against (changelog.applies), the same way the evaluators check it.
        self.last_seq = last_seq
        # The offsets read since changes were last applied. They include dead-lettered
        # records, which never reach handle(): the snapshot covers them too, or the changes
        # after them would look like a gap.
        self.first_read: int | None = None
        self.next_read = 0
        # The offset of the last record decoded into a change (not dead-lettered).
        self.last_decoded = -1

    def decode(self, record: ConsumerRecord) -> events_pb2.RuleChanged:
        if self.first_read is None:
            self.first_read = record.offset
        self.next_read = record.offset + 1
        change = decode_rule_changed(record)
        try:
            if applies(change.seq, self.last_seq):
                self.last_seq = change.seq
        except InvalidField as error:
            raise InvalidEvent(str(error)) from error
        self.last_decoded = record.offset
        return change

    async def handle(self, deliveries: list[Delivery[events_pb2.RuleChanged]]) -> None:
        """Apply these changes, the whole batch decoded last or, when the worker hands it over
        in parts, the next part of it in order."""
        changes = [(delivery.record.offset, delivery.message) for delivery in deliveries]
        # decode() saw every record of the batch first, deliveries or dead letters alike.
        assert self.first_read is not None
        last = deliveries[-1].record.offset
        # The batch's last part covers the dead letters after its last change too.
        covered_to = self.next_read if last == self.last_decoded else last + 1
        try:
            async with snapshot.lock(self.client, self.settings):
                applied = await snapshot.apply_changes(self.client, self.settings, changes, self.first_read, covered_to)
            log.info("applied %d of %d rule changes", applied, len(changes))
        except snapshot.SnapshotIncomplete as error:
            log.warning("rule snapshot cannot take rule.changed offsets %d-%d (%s): rebuilding it from Postgres",
                        self.first_read, covered_to - 1, error)
            # Outside the lock, which the rebuild takes. The rebuild reads the log's end first,
            # and these changes were read before that, so it covers them.
            rebuilt = await rebuild_from_database(self.client, self.settings, stop=self.stop)
            self.last_seq = rebuilt.version
        failpoint("after_db_write")
        self.first_read = None if covered_to == self.next_read else covered_to
