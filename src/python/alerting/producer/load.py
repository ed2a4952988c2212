"""The load generator: synthetic alerts at a steady rate, with a summary of the run."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass

from tqdm import tqdm

from alerting.common.settings import KafkaSettings
from alerting.common.vocabulary import SEVERITIES
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher


@dataclass(frozen=True)
class LoadSummary:
    sent: int
    duplicates: int  # of `sent`, re-sent with an earlier alert's id
    errors: int  # of `sent`, not acknowledged by the broker
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def run_load(
    settings: KafkaSettings,
    count: int,
    rate: float,
    sources: int,
    names: int,
    duplicates: float,
    seed: int,
    progress: bool = True,
) -> LoadSummary:
    """Publish `count` synthetic alerts at `rate` per second, over `sources` × `names`
    distinct source/name pairs, a fraction `duplicates` of them re-sent with an earlier id."""
    rng = random.Random(seed)
    severities = list(SEVERITIES)
    sent_ids: list[str] = []
    chunk = max(1, min(500, int(rate / 20) or 1))
    sent = errors = repeated = 0
    started = time.perf_counter()
    async with AlertPublisher(settings) as publisher:
        with tqdm(total=count, unit="alert", disable=not progress, file=sys.stderr) as bar:
            while sent < count:
                batch = []
                for _ in range(min(chunk, count - sent)):
                    if sent_ids and rng.random() < duplicates:
                        alert_id, repeated = rng.choice(sent_ids), repeated + 1
                    else:
                        alert_id = None
                    alert = build_alert(rng.choice(severities), f"src-{rng.randrange(sources)}",
                                        f"name-{rng.randrange(names)}", alert_id=alert_id)
                    sent_ids.append(alert.alert_id)
                    batch.append(alert)
                try:
                    await publisher.publish(batch)
                except Exception:  # counted and reported in the summary; the run goes on
                    errors += len(batch)
                sent += len(batch)
                bar.update(len(batch))
                # Pace to the target rate.
                ahead = sent / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    seconds = time.perf_counter() - started
    return LoadSummary(sent=sent, duplicates=repeated, errors=errors, seconds=seconds)
