"""rule-updater: keeps the Redis rule snapshot current from `rule.changed`.

Wiring only: the durable step is writer.py; the snapshot, the change log and the rebuild
are the rule path's library, alerting.rules."""

from __future__ import annotations

import logging
from contextlib import aclosing

from alerting.common import topics
from alerting.common.kafka import Wiring, run_worker
from alerting.common.redis_client import redis_client
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import RuleUpdaterSettings
from alerting.rule_updater.writer import SnapshotWriter
from alerting.rules.rebuild import load_or_rebuild
from alerting.rules.snapshot import unconverted

log = logging.getLogger(__name__)


async def run(settings: RuleUpdaterSettings, lifecycle: Lifecycle) -> None:
    async with aclosing(redis_client(settings)) as client:
        loaded, rebuilt = await load_or_rebuild(client, settings, unconverted, stop=lifecycle.stop)
        log.info("rule snapshot %s", "rebuilt from Postgres" if rebuilt else "present")
        writer = SnapshotWriter(client, settings, lifecycle.stop, loaded.version)
        await run_worker(settings, lifecycle, topics.RULE_UPDATER, writer.decode, lambda _: Wiring(writer.handle))


def main() -> None:
    run_service("rule-updater", RuleUpdaterSettings(), run)


if __name__ == "__main__":
    main()
