"""End to end with every service running as its own process: the sustained rate from
`alerts.new` to SENT, then p50/p99 latency at half that rate (whole, and split where the
aggregator records the notification), beside the raw broker rate (the same messages
produced and consumed with the same client, no processing), in one run.

    deploy/local-stack up && ./pants run bench/end_to_end.py      (about 3 minutes)
    deploy/local-stack up && ./pants run bench/end_to_end.py -- --smoke   (seconds: that it runs)
    ./pants run bench/end_to_end.py -- --profile "$PWD/bench/profiles/before" \
        --py-spy "$(bench/profiles/install-py-spy)"
        (the same, with py-spy sampling the evaluator, aggregator and sender during the
        throughput phase: their top functions in that folder; its numbers include py-spy's cost)
It uses its own topics (production partition counts), database, Redis keys and SMTP sink;
all are removed afterwards. The rule-service serves TLS and the rules are created with an
admin key, as the platform runs it. Each alert matches one client through two overlapping
rules half of the time, so there is one notification per alert.

The SMTP sink and the load generator are not the platform: beside the whole machine's
numbers it prints the platform's own, the CPU of the evaluator, aggregator and sender per
notification and the rate they alone could sustain on this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from profiling import recording

import alerting.aggregator.main  # noqa: F401  (the services run from these modules, in subprocesses)
import alerting.evaluator.main  # noqa: F401
import alerting.rule_service.main  # noqa: F401
import alerting.rule_updater.main  # noqa: F401
import alerting.sender.main  # noqa: F401
import alerting.smtp_sink.main  # noqa: F401
from alerting.common import telemetry, topics
from alerting.common.db import owner_url
from alerting.common.grpc_client import aio_channel
from alerting.common.kafka import OutgoingMessage, make_consumer, make_producer, publish_all
from alerting.common.vocabulary import WILDCARD
from alerting.producer.alerts import alert_new, build_alert
from alerting.producer.load import run_load
from alerting.testsupport import stack
from alerting.testsupport.services import (
    IMMEDIATE_ENVIRONMENT,
    fetch,
    free_port,
    service_environment,
    spawn_rule_service,
    spawn_service,
    stop_process,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, rule_service_pb2, rule_service_pb2_grpc

# As deploy/topics.txt creates them.
PARTITIONS = {topics.ALERTS_NEW: 6, topics.RULE_CHANGED: 1, topics.ALERTS_MATCHED: 6, topics.NOTIFICATIONS_READY: 6}
CLIENTS = 100  # each watches its own source, src-<n>


@dataclass(frozen=True)
class Sizes:
    throughput_alerts: int
    latency_seconds: float
    raw_messages: int


FULL = Sizes(throughput_alerts=40_000, latency_seconds=20, raw_messages=40_000)
SMOKE = Sizes(throughput_alerts=300, latency_seconds=2, raw_messages=2_000)
WORKERS = ("alerting.rule_updater.main", "alerting.evaluator.main", "alerting.aggregator.main", "alerting.sender.main")
# The processes an alert goes through on its way to SENT; the rule-service and rule-updater
# are idle while the rules do not change, the sink and the producer stand for the outside.
PLATFORM = ("evaluator", "aggregator", "sender")
LOAD_GENERATOR = "producer (this script)"
OUTSIDE = ("smtp-sink", LOAD_GENERATOR)


@dataclass(frozen=True)
class Profiling:
    py_spy: str  # the py-spy program
    directory: Path  # where each worker's collapsed stacks and top functions go


@dataclass(frozen=True)
class PlatformCost:
    micros: float  # CPU µs per notification of the PLATFORM processes together
    per_cpu_second: float  # notifications per CPU-second of them
    cores: int
    on_cores: float  # notifications/s they could sustain with every core to themselves
    outside_micros: float  # CPU µs per notification of the sink and the load generator


def platform_cost(cpu_per_alert: dict[str, float], cores: int) -> PlatformCost:
    micros = sum(cpu_per_alert[name] for name in PLATFORM)
    return PlatformCost(micros, 1e6 / micros, cores, cores * 1e6 / micros,
                        sum(cpu_per_alert[name] for name in OUTSIDE))


def service_name(module: str) -> str:
    return module.removeprefix("alerting.").removesuffix(".main").replace("_", "-")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent on anything but idling, so far."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, *rest = (int(v) for v in stat.readline().split()[1:])
    return (user + nice + system + sum(rest[:3])) / os.sysconf("SC_CLK_TCK")


async def raw_broker_rate(settings: StackSettings, messages: int) -> float:
    """Messages/s produced and consumed concurrently through one topic, no processing."""
    value = alert_new(build_alert("HIGH", "src-1", "name-1")).SerializeToString()
    topic = settings.topic("raw")
    await stack.create_topics(settings, {"raw": PARTITIONS[topics.ALERTS_NEW]})
    consumer = make_consumer(settings, "raw-bench", "raw")
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        started = time.perf_counter()

        async def consume() -> None:
            received = 0
            while received < messages:
                batch = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max_records)
                received += sum(len(records) for records in batch.values())
                if batch:
                    await consumer.commit()

        async def produce() -> None:
            for start in range(0, messages, 500):
                await publish_all(producer, [OutgoingMessage(topic, value, key=str(n).encode())
                                             for n in range(start, min(start + 500, messages))])

        await asyncio.gather(consume(), produce())
        return messages / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def create_rules(client_settings: StackSettings) -> None:
    """Client n, granted the source src-<n>: every alert of it, and HIGH alerts of it again
    (an overlap); as the admin, over TLS."""
    async with aio_channel(client_settings) as channel:
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        for number in range(CLIENTS):
            client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=f"bench-{number}"))
            await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                client_id=client.client_id, source=f"src-{number}"))
            for severity in (WILDCARD, "HIGH"):
                await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity=severity, source=f"src-{number}", name=WILDCARD,
                    emails=[f"oncall@tenant-{number}.example"]))


async def sent_count(settings: StackSettings) -> int:
    return (await fetch(settings, "SELECT count(*) AS n FROM notifications WHERE status = 'SENT'"))[0]["n"]


async def until_sent(settings: StackSettings, total: int, timeout: float) -> float:
    """Wait until `total` notifications are SENT; the perf_counter time it was seen."""

    async def reached() -> bool:
        return await sent_count(settings) >= total

    await wait_until(reached, timeout, f"{total} SENT notifications")
    return time.perf_counter()


@dataclass(frozen=True)
class Latencies:
    """Seconds, each list sorted: from each alert's event time (its publication) to SENT, and
    the two parts of it on either side of the aggregator's insert (the notification's
    `created_at`): the evaluator and aggregator before, the sender after."""

    to_sent: list[float]
    to_recorded: list[float]
    recorded_to_sent: list[float]


def p50_p99(values: list[float]) -> tuple[float, float]:
    """Of sorted `values`."""
    return statistics.median(values), values[int(len(values) * 0.99) - 1]


async def latencies_since(settings: StackSettings, since: datetime) -> Latencies:
    rows = await fetch(settings, "SELECT alert, created_at, sent_at FROM notifications WHERE created_at >= $1",
                       since)
    parts: list[tuple[float, float, float]] = []
    for row in rows:
        event_ts = alert_pb2.Alert.FromString(row["alert"]).event_ts.ToDatetime(tzinfo=UTC)
        parts.append(((row["sent_at"] - event_ts).total_seconds(), (row["created_at"] - event_ts).total_seconds(),
                      (row["sent_at"] - row["created_at"]).total_seconds()))
    return Latencies(*(sorted(column) for column in zip(*parts, strict=True)))


@asynccontextmanager
async def stack_slice(stem: str) -> AsyncIterator[StackSettings]:
    """Settings naming this run's own database (migrated), topics (production partition
    counts), Redis keys and SMTP port, all removed on exit; with the owner's login, which
    creates and drops them."""
    base = StackSettings()
    base = base.model_copy(update={"database_url": owner_url(base)})
    tag = stack.unique_name(stem)
    settings = base.model_copy(update={"redis_key_prefix": f"{tag}:", "topic_prefix": f"{tag}.",
                                       "smtp_port": free_port()})
    database_url = await stack.create_database(base.database_url, tag)
    try:
        stack.migrate_up(database_url)
        settings = settings.model_copy(update={"database_url": database_url})
        await stack.create_topics(settings, PARTITIONS)
        yield settings
    finally:
        await stack.delete_redis_keys(settings)
        await stack.delete_topics(settings)
        await stack.drop_database(base.database_url, tag)


async def start_mail_and_rules(
    settings: StackSettings, scratch: str,
) -> tuple[list[asyncio.subprocess.Process], StackSettings]:
    """The SMTP sink (its mail in `scratch`) and the rule-service (TLS, an admin key in
    `scratch`), as processes; and the settings of the rule-service's admin."""
    sink = await spawn_service("alerting.smtp_sink.main", service_environment(
        settings, ALERTING_SMTP_SINK_PORT=str(settings.smtp_port), ALERTING_MAIL_DIR=scratch))
    rule_service = await spawn_rule_service(settings, scratch)
    return [sink, rule_service.process], rule_service.client_settings


async def throughput(settings: StackSettings, sizes: Sizes, processes: list[asyncio.subprocess.Process],
                     names: list[str], profiling: Profiling | None) -> tuple[float, dict[str, float]]:
    """The sustained rate, after a warm-up, and each process's CPU per notification meanwhile
    (profiled by py-spy when `profiling` says so)."""
    # Warm-up: the first alerts prove every service is up and has the rules.
    await run_load(settings, 200, 200.0, CLIENTS, 50, 0.0, seed=1, progress=False)
    await until_sent(settings, 200, 120)
    log(f"throughput: {sizes.throughput_alerts:,} alerts as fast as they can be published")
    pids = {name: process.pid for name, process in zip(names, processes, strict=True) if name in PLATFORM}
    profiled = recording(profiling.py_spy, pids, profiling.directory) if profiling else nullcontext()
    async with profiled:
        cpu_before = [cpu_seconds(process.pid) for process in processes] + [cpu_seconds(), machine_busy_seconds()]
        started = time.perf_counter()
        load = await run_load(settings, sizes.throughput_alerts, 1e9, CLIENTS, 50, 0.0, seed=2, progress=False)
        finished = await until_sent(settings, 200 + sizes.throughput_alerts, 600)
        cpu_after = [cpu_seconds(process.pid) for process in processes] + [cpu_seconds(), machine_busy_seconds()]
    sustained = sizes.throughput_alerts / (finished - started)
    cpu_per_alert = {name: (after - before) / sizes.throughput_alerts * 1e6 for name, before, after in
                     zip([*names, LOAD_GENERATOR, "whole machine"], cpu_before, cpu_after, strict=True)}
    log(f"  published at {load.rate:,.0f}/s, all SENT after {finished - started:.1f} s: "
        f"{sustained:,.0f} notifications/s")
    return sustained, cpu_per_alert


async def latency(settings: StackSettings, sizes: Sizes, sustained: float) -> Latencies:
    """Alert → SENT latencies at half the sustained rate."""
    half = sustained / 2
    count = int(half * sizes.latency_seconds)
    log(f"latency: {count:,} alerts at {half:,.0f}/s")
    since = (await fetch(settings, "SELECT now() AS t"))[0]["t"]
    already = await sent_count(settings)
    await run_load(settings, count, half, CLIENTS, 50, 0.0, seed=3, progress=False)
    await until_sent(settings, already + count, 600)
    return await latencies_since(settings, since)


async def main(sizes: Sizes, profiling: Profiling | None = None) -> None:
    async with stack_slice("e2e") as settings:
        raw = await raw_broker_rate(settings, sizes.raw_messages)
        log(f"raw broker: {raw:,.0f} messages/s produced and consumed")
        # After the raw rate, which is measured without instrumentation: as the producer's CLI does.
        telemetry.setup_tracing("alert-producer", settings)
        with tempfile.TemporaryDirectory() as scratch:
            processes, admin = await start_mail_and_rules(settings, scratch)
            try:
                names = ["smtp-sink", "rule-service", *(service_name(module) for module in WORKERS)]
                await create_rules(admin)
                for module in WORKERS:
                    # One email per notification: the rate of delivery itself, not of digests.
                    processes.append(await spawn_service(module, service_environment(settings,
                                                                                     **IMMEDIATE_ENVIRONMENT)))
                sustained, cpu_per_alert = await throughput(settings, sizes, processes, names, profiling)
                latencies = await latency(settings, sizes, sustained)
            finally:
                await asyncio.gather(*(stop_process(process) for process in reversed(processes)))

    p50, p99 = p50_p99(latencies.to_sent)
    log(f"  p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {len(latencies.to_sent):,} notifications")
    print("| CPU per notification, throughput phase | " + " | ".join(cpu_per_alert) + " |")
    print("|---|" + "---:|" * len(cpu_per_alert))
    print("| µs | " + " | ".join(f"{micros:,.0f}" for micros in cpu_per_alert.values()) + " |")
    print()
    print("| raw broker (produce+consume) | sustained alerts → SENT | ratio | latency at half load: p50 | p99 |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {raw:,.0f} msg/s | {sustained:,.0f} notifications/s | {sustained / raw:.2f} "
          f"| {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms |")
    cost = platform_cost(cpu_per_alert, os.cpu_count() or 1)
    print()
    print(f"| platform only: {' + '.join(PLATFORM)} | notifications per CPU-second "
          f"| on {cost.cores} cores without sink and load generator | outside: {' + '.join(OUTSIDE)} |")
    print("|---:|---:|---:|---:|")
    print(f"| {cost.micros:,.0f} µs per notification | {cost.per_cpu_second:,.0f} "
          f"| {cost.on_cores:,.0f} notifications/s | {cost.outside_micros:,.0f} µs per notification |")
    print()
    print("| latency at half load | alert → SENT | alert → recorded (evaluator, aggregator) "
          "| recorded → SENT (sender) |")
    print("|---|---:|---:|---:|")
    split = [p50_p99(part) for part in (latencies.to_sent, latencies.to_recorded, latencies.recorded_to_sent)]
    for name, index in (("p50", 0), ("p99", 1)):
        print(f"| {name} | " + " | ".join(f"{each[index] * 1000:.0f} ms" for each in split) + " |")


def absolute_path(text: str) -> Path:
    """A folder named from where the command was typed: `./pants run` runs in a sandbox."""
    if not os.path.isabs(text):
        raise argparse.ArgumentTypeError(f"{text!r}: give an absolute path, e.g. \"$PWD/{text}\"")
    return Path(text)


def arguments() -> tuple[Sizes, Profiling | None]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs, not how fast")
    parser.add_argument("--profile", type=absolute_path, metavar="DIR",
                        help="profile the evaluator, aggregator and sender with py-spy in the throughput phase")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy program (default: py-spy on PATH)")
    args = parser.parse_args()
    return SMOKE if args.smoke else FULL, Profiling(args.py_spy, args.profile) if args.profile else None


if __name__ == "__main__":
    asyncio.run(main(*arguments()))
