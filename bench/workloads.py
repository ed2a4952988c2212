"""Synthetic rules and alerts shaped like a real tenant mix, for the benchmarks, and the
choice of a benchmark's sizes."""

from __future__ import annotations

import argparse
import random
import uuid
from typing import TypeVar

from alerting.common.vocabulary import SEVERITIES, WILDCARD
from alerting.evaluator.matcher import Grant, IndexedRule

# (severity, source, name) concrete or wildcard, with how often tenants write each shape.
# Tenants watch their own sources, so rules without a concrete source are rare; a rule
# like "every HIGH alert of every source" would notify a tenant of all the others' alerts.
SHAPES = [
    ((True, True, True), 0.35),
    ((False, True, True), 0.25),
    ((True, True, False), 0.20),
    ((False, True, False), 0.18),
    ((False, False, True), 0.01),
    ((True, False, True), 0.01),
]
T = TypeVar("T")
SOURCES_PER_CLIENT = 5
NAMES = 2000


def client_sources(client_number: int) -> list[str]:
    return [f"tenant-{client_number}-service-{i}" for i in range(SOURCES_PER_CLIENT)]


def quiet_source(client_number: int) -> str:
    """A source granted to the client that none of its rules names."""
    return f"tenant-{client_number}-quiet"


def client_ids(rng: random.Random, clients: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(clients)]


def names(count: int = NAMES) -> list[str]:
    return [f"check-{i}" for i in range(count)]


def make_rules(count: int, clients: int = 10_000, seed: int = 1) -> list[IndexedRule]:
    rng = random.Random(seed)
    owners = client_ids(rng, clients)
    name_pool = names()
    shapes, weights = zip(*SHAPES, strict=True)
    rules = []
    for number, shape in enumerate(rng.choices(shapes, weights, k=count)):
        client = owners[number % clients]
        rules.append(IndexedRule(
            rule_id=str(uuid.UUID(int=rng.getrandbits(128))),
            client_id=client,
            severity=rng.choice(SEVERITIES) if shape[0] else WILDCARD,
            source=rng.choice(client_sources(number % clients)) if shape[1] else WILDCARD,
            name=rng.choice(name_pool) if shape[2] else WILDCARD,
            emails=(f"oncall@{client[:8]}.example",),
            enabled=True,
            version=1,
        ))
    return rules


def make_grants(clients: int = 10_000, seed: int = 1) -> list[Grant]:
    """What an admin grants the clients of make_rules (same clients and seed): each its own
    sources, and its quiet one."""
    owners = client_ids(random.Random(seed), clients)
    return [Grant(owners[number], source, False)
            for number in range(clients) for source in [*client_sources(number), quiet_source(number)]]


def make_alerts(count: int, clients: int = 10_000, seed: int = 2) -> list[tuple[str, str, str]]:
    """Alerts from the tenants' sources, with names from the shared pool."""
    rng = random.Random(seed)
    name_pool = names()
    return [
        (rng.choice(SEVERITIES), rng.choice(client_sources(rng.randrange(clients))), rng.choice(name_pool))
        for _ in range(count)
    ]


def full_or_smoke(description: str | None, full: T, smoke: T) -> T:
    """`smoke` when the command line says --smoke, else `full`. CI runs every benchmark at
    its smoke sizes (seconds), so that one that stops working fails the build."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs, not how fast")
    return smoke if parser.parse_args().smoke else full
