"""One tenant's storm beside a hundred quiet tenants, with every service its own process:
how many emails the storm becomes under the default delivery policy, and how long the
quiet tenants wait for their first email while it runs; then the same with every policy at
group_wait = 0 (one email per notification, no hourly limit) as the baseline, in one run.

    deploy/local-stack up && eval "$(deploy/local-stack env)" && ./pants run bench/storm.py   (about 4 minutes)
    ./pants run bench/storm.py -- --smoke                                                      (seconds: that it runs)
Each run has its own topics, database, Redis keys and SMTP sink, all removed afterwards.
The storming tenant's 20 rules all match its alerts (one notification per alert, with 20
rule ids). A quiet tenant's first-email latency is from the publication of its first alert
of the storm window to the moment its notification is SENT (in a digest or alone).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from end_to_end import WORKERS, log, stack_slice, start_mail_and_rules
from workloads import full_or_smoke

from alerting.common.grpc_client import aio_channel
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.testsupport.services import (
    IMMEDIATE_ENVIRONMENT,
    fetch,
    service_environment,
    spawn_service,
    stop_process,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import rule_service_pb2, rule_service_pb2_grpc

STORM_RULES = 20
GROUP_WAIT_SECONDS = 10  # the default policy's, which the storm run keeps


@dataclass(frozen=True)
class Sizes:
    quiet_tenants: int
    quiet_per_second: float  # in all
    storm_alerts: int
    storm_seconds: float


FULL = Sizes(quiet_tenants=100, quiet_per_second=5.0, storm_alerts=20_000, storm_seconds=20.0)
SMOKE = Sizes(quiet_tenants=5, quiet_per_second=5.0, storm_alerts=300, storm_seconds=3.0)


@dataclass(frozen=True)
class Outcome:
    recorded: Counter[str]  # notifications by tenant
    expected: Counter[str]
    emails: Counter[str]  # by tenant
    largest_digest: dict[str, int]
    storm_pending: int
    first_email_seconds: list[float]  # per quiet tenant


async def create_tenants(client_settings: StackSettings, sizes: Sizes) -> dict[str, str]:
    """Tenant name → client id: `quiet-<n>` watching its source, and `storm` with its rules."""
    clients = {}
    async with aio_channel(client_settings) as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        for name in [*(f"quiet-{n}" for n in range(sizes.quiet_tenants)), "storm"]:
            client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=name))
            clients[name] = client.client_id
            await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                client_id=client.client_id, source=name))
            # The storm's every alert (HIGH, "check") matches all its rules.
            patterns = [("*", "*")] if name != "storm" else [
                (("*", "HIGH")[n % 2], ("*", "check")[n // 2 % 2]) for n in range(STORM_RULES)]
            for severity, rule_name in patterns:
                await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity=severity, source=name, name=rule_name,
                    emails=[f"oncall@{name}.example"]))
    return clients


async def publish_window(
    settings: StackSettings, sizes: Sizes, rng: random.Random,
) -> dict[str, list[tuple[str, datetime]]]:
    """The storm and the quiet traffic, side by side for the window; tenant → [(alert id,
    published at)] in publication order."""
    published: dict[str, list[tuple[str, datetime]]] = {}
    storm_per_tick = max(1, int(sizes.storm_alerts / sizes.storm_seconds / 20))
    quiet_every = 1.0 / sizes.quiet_per_second
    async with AlertPublisher(settings) as publisher:
        started = time.perf_counter()
        sent_storm = 0
        next_quiet = 0.0
        while (elapsed := time.perf_counter() - started) < sizes.storm_seconds:
            batch = []
            if sent_storm < sizes.storm_alerts:
                count = min(storm_per_tick, sizes.storm_alerts - sent_storm)
                batch += [("storm", build_alert("HIGH", "storm", "check")) for _ in range(count)]
                sent_storm += count
            while next_quiet <= elapsed:
                tenant = f"quiet-{rng.randrange(sizes.quiet_tenants)}"
                batch.append((tenant, build_alert("HIGH", tenant, f"check-{rng.randrange(50)}")))
                next_quiet += quiet_every
            await publisher.publish([alert for _, alert in batch])
            now = datetime.now(UTC)
            for tenant, alert in batch:
                published.setdefault(tenant, []).append((alert.alert_id, now))
            await asyncio.sleep(0.05)
        if sent_storm < sizes.storm_alerts:  # the publisher could not keep the pace: the rest now
            rest = [build_alert("HIGH", "storm", "check") for _ in range(sizes.storm_alerts - sent_storm)]
            await publisher.publish(rest)
            published.setdefault("storm", []).extend((alert.alert_id, datetime.now(UTC)) for alert in rest)
    return published


async def run(sizes: Sizes, baseline: bool) -> Outcome:
    async with stack_slice("storm") as settings:
        with tempfile.TemporaryDirectory() as scratch:
            processes, admin = await start_mail_and_rules(settings, scratch)
            try:
                clients = await create_tenants(admin, sizes)
                policy = IMMEDIATE_ENVIRONMENT if baseline else {}
                for module in WORKERS:
                    processes.append(await spawn_service(module, service_environment(settings, **policy)))
                await asyncio.sleep(3)  # the rules travel to the evaluator, the consumers join
                published = await publish_window(settings, sizes, random.Random(7))
                names = {client_id: name for name, client_id in clients.items()}
                expected = Counter({name: len(alerts) for name, alerts in published.items()})
                quiet = [name for name in published if name != "storm"]
                firsts = {name: published[name][0][0] for name in quiet}

                async def quiet_firsts_sent() -> bool:
                    rows = await fetch(settings, "SELECT count(*) AS n FROM notifications WHERE alert_id = ANY($1)"
                                                 " AND status = 'SENT'", list(firsts.values()))
                    return rows[0]["n"] == len(firsts)

                await wait_until(quiet_firsts_sent, 600, "every quiet tenant's first email")
                # The storm, too, has had its first digest (or, in the baseline, all its emails).
                storm_id = clients["storm"]

                async def storm_settled() -> bool:
                    rows = await fetch(settings, "SELECT count(*) AS recorded, count(*) FILTER (WHERE status = 'SENT')"
                                                 " AS sent FROM notifications WHERE client_id = $1", storm_id)
                    recorded, sent = rows[0]["recorded"], rows[0]["sent"]
                    return recorded == expected["storm"] and (sent == recorded if baseline else sent > 0)

                await wait_until(storm_settled, 900, "the storm recorded and its first email sent")
                rows = await fetch(settings, "SELECT client_id::text, alert_id, status, sent_at, digest_id::text"
                                             " FROM notifications")
                # Each tenant's one address is oncall@<tenant>.example.
                emails = Counter(str(mail["To"]).split("@")[1].removesuffix(".example")
                                 for mail in mailbox.read_all(Path(scratch)))
            finally:
                await asyncio.gather(*(stop_process(process) for process in reversed(processes)))

    recorded = Counter(names[row["client_id"]] for row in rows)
    sent_at = {row["alert_id"]: row["sent_at"] for row in rows if row["client_id"] != clients["storm"]}
    first_email = [(sent_at[firsts[name]] - published[name][0][1]).total_seconds() for name in quiet]
    digest_sizes = Counter((names[row["client_id"]], row["digest_id"]) for row in rows if row["digest_id"])
    largest: dict[str, int] = {}
    for (name, _), size in digest_sizes.items():
        largest[name] = max(largest.get(name, 0), size)
    pending = sum(1 for row in rows if row["client_id"] == clients["storm"] and row["status"] == "PENDING")
    return Outcome(recorded, expected, emails, largest, pending, first_email)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share + 0.5) - 1)]


def report(label: str, outcome: Outcome, sizes: Sizes) -> None:
    quiet = [name for name in outcome.expected if name != "storm"]
    exact = outcome.recorded == outcome.expected
    print(f"| {label} | {outcome.recorded['storm']:,} of {outcome.expected['storm']:,} | "
          f"{outcome.emails['storm']:,} | {outcome.largest_digest.get('storm', 1):,} | {outcome.storm_pending:,} | "
          f"{sum(outcome.recorded[n] for n in quiet):,} of {sum(outcome.expected[n] for n in quiet):,} | "
          f"{sum(outcome.emails[n] for n in quiet):,} | "
          f"{statistics.median(outcome.first_email_seconds):.2f} s | "
          f"{percentile(outcome.first_email_seconds, 0.99):.2f} s | {max(outcome.first_email_seconds):.2f} s | "
          f"{'yes' if exact else 'NO'} |")


async def main(sizes: Sizes) -> None:
    log(f"storm: {sizes.storm_alerts:,} alerts in {sizes.storm_seconds:.0f} s for one tenant, "
        f"{sizes.quiet_per_second:g} alerts/s in all for {sizes.quiet_tenants} quiet tenants")
    log("run 1: the default policy (group_wait 10 s, group_interval 5 min, no group_by, 100 emails/h)")
    policy = await run(sizes, baseline=False)
    log("run 2 (baseline): every policy at group_wait 0 (one email per notification), no hourly limit")
    immediate = await run(sizes, baseline=True)
    print("| policy | storm notifications recorded | storm emails | largest digest | storm still waiting in"
          " a digest | quiet notifications recorded | quiet emails | quiet first email p50 | p99 | max |"
          " recorded exactly |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    report("default", policy, sizes)
    report("group_wait 0 (baseline)", immediate, sizes)
    log(f"goal: quiet tenants' first email ≤ group_wait + 2 s = {GROUP_WAIT_SECONDS + 2} s at p99 under the default"
        f" policy: {'met' if percentile(policy.first_email_seconds, 0.99) <= GROUP_WAIT_SECONDS + 2 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main(full_or_smoke(__doc__, FULL, SMOKE)))
