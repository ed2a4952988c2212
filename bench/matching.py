"""Matching cost per alert with 1k, 100k and 1M rules over 10k clients, each granted its own
sources: the evaluator's index against a naive scan of every rule, in the same run, and
against its bound: twice the cost of an alert that matches nothing, plus 1 µs per client
matched.

    ./pants run bench/matching.py            (about 3 minutes)
    ./pants run bench/matching.py -- --smoke (seconds: that it runs)
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from workloads import full_or_smoke, make_alerts, make_grants, make_rules, quiet_source

from alerting.common.vocabulary import WILDCARD
from alerting.evaluator.matcher import IndexedRule, RuleIndex


@dataclass(frozen=True)
class Sizes:
    rules: tuple[int, ...]
    alerts: int
    repetitions: int


FULL = Sizes(rules=(1_000, 100_000, 1_000_000), alerts=20_000, repetitions=5)
SMOKE = Sizes(rules=(1_000,), alerts=500, repetitions=1)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def naive_match(rules: Sequence[IndexedRule], owners: Mapping[str, set[str]], severity: str, source: str,
                name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    granted = owners.get(source, set())
    for rule in rules:
        if (rule.severity in (WILDCARD, severity) and rule.source in (WILDCARD, source)
                and rule.name in (WILDCARD, name) and rule.client_id in granted):
            found.setdefault(rule.client_id, []).append(rule.rule_id)
    return found


def per_alert_seconds(match: Callable[[str, str, str], object], alerts: Sequence[tuple[str, str, str]]) -> float:
    started = time.perf_counter()
    for alert in alerts:
        match(*alert)
    return (time.perf_counter() - started) / len(alerts)


def main(sizes: Sizes) -> None:
    alerts = make_alerts(sizes.alerts)
    grants = make_grants()
    owners: dict[str, set[str]] = {}
    for grant in grants:
        owners.setdefault(grant.source, set()).add(grant.client_id)
    rows = []
    for size in sizes.rules:
        rules = make_rules(size)
        gc.collect()
        before = rss_bytes()
        index = RuleIndex()
        started = time.perf_counter()
        index.load_grants(grants)
        for rule in rules:
            index.upsert(rule)
        build = time.perf_counter() - started
        gc.collect()
        memory = (rss_bytes() - before) / size
        # The first pass also makes the roll-ups its alerts need (matcher.py); the median is
        # of passes that find them made, as an evaluator does once its sources have fired.
        passes = [per_alert_seconds(index.match, alerts) for _ in range(sizes.repetitions)]
        first, indexed = passes[0], statistics.median(passes)
        # Alerts of a source granted to their client that no rule names, with names no rule
        # names: every shape probed, nothing found.
        unmatched = [(severity, quiet_source(int(source.split("-")[1])), f"unknown-{name}")
                     for severity, source, name in alerts]
        probe = statistics.median(per_alert_seconds(index.match, unmatched) for _ in range(sizes.repetitions))
        matches = sum(len(index.match(*alert)) for alert in alerts[:2000]) / 2000
        # The naive scan is O(rules): sample fewer alerts as the rule count grows.
        sample = alerts[: max(20, 200_000 // size)]

        def scan(severity: str, source: str, name: str, rules: list[IndexedRule] = rules) -> dict[str, list[str]]:
            return naive_match(rules, owners, severity, source, name)

        naive = statistics.median(per_alert_seconds(scan, sample) for _ in range(3))
        rows.append((size, indexed, first, probe, naive, matches, memory, build))
        print(f"{size:>9} rules: index {indexed * 1e6:.2f} µs/alert (first pass {first * 1e6:.2f}, "
              f"{probe * 1e6:.2f} unmatched), "
              f"naive {naive * 1e6:.0f} µs/alert, {matches:.2f} clients matched/alert, {memory:.0f} B/rule, "
              f"built in {build:.1f} s", file=sys.stderr)
        del index, rules
        gc.collect()

    # The bound: twice the no-match probe, plus 1 µs per client matched.
    print("| rules | index µs/alert | first pass | index µs/alert, no match | bound (2 × no match + 1 µs × clients) "
          "| naive scan µs/alert | speed-up | clients matched/alert | memory/rule (RSS) | index build |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, indexed, first, probe, naive, matches, memory, build in rows:
        print(f"| {size:,} | {indexed * 1e6:.2f} | {first * 1e6:.2f} | {probe * 1e6:.2f} "
              f"| {2 * probe * 1e6 + matches:.2f} | {naive * 1e6:,.0f} | {naive / indexed:,.0f}× "
              f"| {matches:.2f} | {memory:.0f} B | {build:.1f} s |")


if __name__ == "__main__":
    main(full_or_smoke(__doc__, FULL, SMOKE))
