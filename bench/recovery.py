"""Recovery from SIGKILL: alert → SENT latency of a steady flow without kills (baseline),
then of the same flow while each worker in turn is killed with SIGKILL and restarted a
second later under the same instance id (a static consumer-group member, which gets its
partitions back at once), in one run; and a check that every alert of both phases ended
with exactly one notification, SENT (it exits 1 when one did not).

    deploy/local-stack up && ./pants run bench/recovery.py [-- --logs DIR]     (about 2 minutes)
    deploy/local-stack up && ./pants run bench/recovery.py -- --smoke         (seconds: that it runs)
It sets up as bench/end_to_end.py does (every service its own process; its own topics,
database, Redis keys and SMTP sink, all removed afterwards); the workers' logs go to a
temporary directory (kept in DIR with --logs), from which the restarts' timelines are printed,
and each restarted worker's time from exec to consuming (its partitions assigned again).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from end_to_end import (
    CLIENTS,
    WORKERS,
    create_rules,
    log,
    p50_p99,
    sent_count,
    service_name,
    stack_slice,
    start_mail_and_rules,
    until_sent,
)

from alerting.common.vocabulary import SEVERITIES
from alerting.producer.alerts import build_alert
from alerting.producer.load import run_load
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.testsupport.services import (
    IMMEDIATE_ENVIRONMENT,
    fetch,
    service_environment,
    stop_process,
)
from alerting.testsupport.stack import StackSettings

WARM_UP = 200  # alerts, before the baseline
RATE = 100.0  # alerts/s, in both phases
NAMES = 50  # alert names per source


@dataclass(frozen=True)
class Plan:
    baseline_seconds: float
    kill_phase_seconds: float
    # Which worker is killed when, in seconds from the start of the kill phase's flow.
    kills: tuple[tuple[str, float], ...]


FULL = Plan(30.0, 50.0, (("evaluator", 8.0), ("aggregator", 17.0), ("sender", 26.0), ("rule-updater", 35.0)))
SMOKE = Plan(3.0, 14.0, (("evaluator", 1.0), ("aggregator", 4.0), ("sender", 7.0), ("rule-updater", 10.0)))
RESTART_AFTER = 1.0
NEAR_KILL = 2.0  # alerts published this close to a kill are "its" alerts
GOAL_SECONDS = 5.0
SESSION_TIMEOUT_MS = 10_000
DEADLINE_SECONDS = 330  # the whole run, cleanup aside
# Log lines of a restarted worker that show where its time went.
ASSIGNED = "newly assigned"  # aiokafka's line when the group has given the consumer its partitions
MILESTONES = ("starting", "warmed", "rule snapshot", "released", "joining group", "Joined group", "Elected",
              "Successfully synced", ASSIGNED, "WARNING", "ERROR")
LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+): (.*)")


@dataclass(frozen=True)
class Life:
    """One process of a worker, and the file its output went to."""

    process: asyncio.subprocess.Process
    started_at: datetime
    log_file: Path


class Worker:
    """A worker run under a stable instance id, each of its lives logging to its own file."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path) -> None:
        self.module = module
        self.name = service_name(module)
        self.env = env
        self.log_dir = log_dir
        self.lives: list[Life] = []

    async def start(self) -> Life:
        path = self.log_dir / f"{self.name}-{len(self.lives) + 1}.log"
        started_at = datetime.now(UTC)
        with path.open("wb") as output:
            # As spawn_service() runs it, but with the output kept: that offers a terminal or nothing.
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, stdout=output, stderr=asyncio.subprocess.STDOUT)
        self.lives.append(Life(process, started_at, path))
        return self.lives[-1]

    async def kill(self) -> datetime:
        process = self.lives[-1].process
        killed_at = datetime.now(UTC)
        process.kill()  # SIGKILL
        await process.wait()
        return killed_at

    async def stop(self) -> None:
        if self.lives:
            await stop_process(self.lives[-1].process)


@dataclass(frozen=True)
class Kill:
    worker: str
    killed_at: datetime
    restarted: Life


@dataclass(frozen=True)
class Outcome:
    """What became of one published alert."""

    published_at: datetime
    notifications: int
    sent: int
    created_at: datetime | None = None  # of its notification row (the aggregator's insert)
    sent_at: datetime | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.notifications == 1 and self.sent == 1

    @property
    def latency(self) -> float | None:
        return (self.sent_at - self.published_at).total_seconds() if self.sent_at else None


async def steady_flow(settings: StackSettings, seconds: float, started: float, seed: int) -> dict[str, datetime]:
    """Alerts at RATE for `seconds` from perf_counter `started`, each matching one client;
    the publication time of each (its event_ts, taken as it is published) by alert id."""
    rng = random.Random(seed)
    total = int(seconds * RATE)
    chunk = max(1, int(RATE / 20))
    published: dict[str, datetime] = {}
    async with AlertPublisher(settings) as publisher:
        while len(published) < total:
            alerts = [
                build_alert(rng.choice(SEVERITIES), f"src-{rng.randrange(CLIENTS)}", f"name-{rng.randrange(NAMES)}")
                for _ in range(min(chunk, total - len(published)))
            ]
            await publisher.publish(alerts)
            for alert in alerts:
                published[alert.alert_id] = alert.event_ts.ToDatetime(tzinfo=UTC)
            ahead = len(published) / RATE - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    if len(published) != total:
        raise RuntimeError(f"{total - len(published)} alert ids repeated")
    return published


async def kill_in_turn(workers: dict[str, Worker], started: float, plan: Plan) -> list[Kill]:
    """SIGKILL each worker of the plan at its time, restarting it RESTART_AFTER later, same environment."""
    kills = []
    for name, at in plan.kills:
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - started)))
        worker = workers[name]
        killed_at = await worker.kill()
        log(f"  +{time.perf_counter() - started:4.1f} s SIGKILL {name}")
        await asyncio.sleep(RESTART_AFTER)
        kills.append(Kill(name, killed_at, await worker.start()))
    return kills


async def wait_all_sent(settings: StackSettings, total: int, timeout: float) -> None:
    """Until `total` notifications are SENT, or `timeout`: the report says what is missing."""
    try:
        await until_sent(settings, total, timeout)
    except AssertionError as error:
        log(f"  {error}; {await sent_count(settings)} SENT")


async def outcomes(settings: StackSettings, published: dict[str, datetime]) -> dict[str, Outcome]:
    rows = await fetch(settings, """
        SELECT alert_id, count(*) AS notifications, count(*) FILTER (WHERE status = 'SENT') AS sent,
               min(created_at) AS created_at, max(sent_at) AS sent_at, max(attempts) AS attempts
        FROM notifications WHERE alert_id = ANY($1::text[]) GROUP BY alert_id""", list(published))
    found = {row["alert_id"]: row for row in rows}
    result = {}
    for alert_id, published_at in published.items():
        row = found.get(alert_id)
        result[alert_id] = Outcome(published_at, 0, 0) if row is None else Outcome(
            published_at, row["notifications"], row["sent"], row["created_at"], row["sent_at"], row["attempts"])
    return result


def latency_row(label: str, results: dict[str, Outcome]) -> str:
    latencies = sorted(latency for result in results.values() if (latency := result.latency) is not None)
    if not latencies:
        return f"| {label} | 0 | – | – | – |"
    p50, p99 = p50_p99(latencies)
    return (f"| {label} | {len(latencies):,} | {p50 * 1000:,.0f} ms "
            f"| {p99 * 1000:,.0f} ms | {latencies[-1] * 1000:,.0f} ms |")


def worst(results: list[Outcome]) -> Outcome | None:
    return max((r for r in results if r.latency is not None), key=lambda r: r.latency or 0.0, default=None)


def seconds_from(moment: datetime | None, origin: datetime) -> str:
    return "never" if moment is None else f"{(moment - origin).total_seconds():+.2f} s"


def milestones(life: Life) -> Iterator[tuple[datetime, str, str]]:
    """(time, logger, message) of each line of a worker's life that shows where its time went."""
    for line in life.log_file.read_text(errors="replace").splitlines():
        match = LOG_LINE.match(line)
        if match is not None and any(word in line for word in MILESTONES):
            yield datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC), match[3], match[4]


def exec_to_consuming(life: Life) -> float | None:
    """Seconds from the process's spawn to its consumer's partitions being assigned."""
    assigned = next((at for at, _, message in milestones(life) if ASSIGNED in message), None)
    return None if assigned is None else (assigned - life.started_at).total_seconds()


def timeline(kill: Kill) -> Iterator[str]:
    """The restarted worker's milestones, in seconds from the kill."""
    yield f"    {seconds_from(kill.restarted.started_at, kill.killed_at)} process spawned"
    for at, logger, message in milestones(kill.restarted):
        if at - kill.killed_at > timedelta(seconds=30):
            break
        yield f"    {seconds_from(at, kill.killed_at)} {logger}: {message[:110]}"


def correctness(label: str, results: dict[str, Outcome]) -> bool:
    missing = sum(1 for r in results.values() if r.notifications == 0)
    several = sum(1 for r in results.values() if r.notifications > 1)
    unsent = sum(1 for r in results.values() if r.notifications == 1 and r.sent != 1)
    good = sum(1 for r in results.values() if r.ok)
    print(f"{label}: {good:,} of {len(results):,} alerts with exactly one notification, SENT "
          f"({missing} without one, {several} with several, {unsent} not SENT)")
    return good == len(results)


def kill_windows(killed: dict[str, Outcome], kills: list[Kill]) -> list[tuple[Kill, list[Outcome], list[Outcome]]]:
    """Per kill: the alerts published within NEAR_KILL of it, and those of its stretch of the
    flow, from NEAR_KILL before it to NEAR_KILL before the next kill (or the end)."""
    near = timedelta(seconds=NEAR_KILL)
    ends = [kill.killed_at - near for kill in kills[1:]] + [datetime.max.replace(tzinfo=UTC)]
    return [(kill,
             [r for r in killed.values() if abs(r.published_at - kill.killed_at) <= near],
             [r for r in killed.values() if kill.killed_at - near <= r.published_at < end])
            for kill, end in zip(kills, ends, strict=True)]


def explain(windows: list[tuple[Kill, list[Outcome], list[Outcome]]]) -> None:
    """Where each recovery's time went: the slowest alert's path and the restarted worker's log."""
    for kill, near, after in windows:
        log(f"{kill.worker}, killed at {kill.killed_at:%H:%M:%S.%f} (times from the kill):")
        for what, slowest in ((f"within ±{NEAR_KILL:.0f} s", worst(near)), ("of its stretch", worst(after))):
            if slowest is not None:
                log(f"  slowest alert {what}: published {seconds_from(slowest.published_at, kill.killed_at)}, "
                    f"its notification row {seconds_from(slowest.created_at, kill.killed_at)}, "
                    f"SENT {seconds_from(slowest.sent_at, kill.killed_at)} after {slowest.attempts} attempt(s)")
        for line in timeline(kill):
            log(line)


def milliseconds(outcome: Outcome | None) -> str:
    return "–" if outcome is None or outcome.latency is None else f"{outcome.latency * 1000:,.0f} ms"


def report(plan: Plan, baseline: dict[str, Outcome], killed: dict[str, Outcome],
           windows: list[tuple[Kill, list[Outcome], list[Outcome]]], phase_start: datetime,
           notifications: int, retried: int, mail_dir: Path) -> tuple[bool, str]:
    """Print the tables and the checks. Whether every alert ended with exactly one SENT
    notification (and no other notification exists), and the verdict on the goal."""
    print("| phase | alerts SENT | p50 | p99 | worst alert → SENT |")
    print("|---|---:|---:|---:|---:|")
    print(latency_row(f"baseline: {plan.baseline_seconds:.0f} s at {RATE:.0f}/s, no kill", baseline))
    print(latency_row(f"kills: {plan.kill_phase_seconds:.0f} s at {RATE:.0f}/s, {len(windows)} kills", killed))
    print()
    print(f"| killed worker | killed at | exec → consuming | alerts published ±{NEAR_KILL:.0f} s "
          f"| worst of them → SENT | worst of its stretch (published from {NEAR_KILL:.0f} s before it to "
          f"{NEAR_KILL:.0f} s before the next) |")
    print("|---|---:|---:|---:|---:|---:|")
    for kill, near, after in windows:
        ready = exec_to_consuming(kill.restarted)
        print(f"| {kill.worker} | +{(kill.killed_at - phase_start).total_seconds():.1f} s "
              f"| {'never' if ready is None else f'{ready * 1000:,.0f} ms'} | {len(near):,} "
              f"| {milliseconds(worst(near))} | {milliseconds(worst(after))} |")
    print()
    good = correctness("baseline", baseline) & correctness("kills", killed)
    expected = WARM_UP + len(baseline) + len(killed)
    print(f"notifications in all: {notifications:,} (expected {expected:,}: one per alert, warm-up included); "
          f"{retried} attempted more than once")
    emails = Counter(mail["Message-ID"] for mail in mailbox.read_all(mail_dir))
    resent = sum(count - 1 for count in emails.values() if count > 1)
    print(f"emails the sink received: {sum(emails.values()):,} for {len(emails):,} notifications "
          f"({resent} sent again, which at-least-once allows after a kill)")
    good = good and notifications == expected
    print(f"correctness, exactly one SENT notification per alert: {'OK' if good else 'FAILED'}")
    worst_killed, worst_baseline = worst(list(killed.values())), worst(list(baseline.values()))
    verdict = "met" if worst_killed and (worst_killed.latency or 0) <= GOAL_SECONDS else "NOT met"
    return good, (f"worst alert → SENT with kills: {milliseconds(worst_killed)} "
                  f"(baseline {milliseconds(worst_baseline)}); goal ≤ {GOAL_SECONDS:.0f} s: {verdict}")


def cancel_on_signals() -> None:
    """SIGINT or SIGTERM cancels the run, which then cleans up; a second one is ignored, so
    that it does not cut the cleanup short."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def cancel() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: None)
        log("stopping: cleaning up")
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, cancel)


async def main(plan: Plan, kept_logs: Path | None) -> int:
    run_started = time.perf_counter()
    cancel_on_signals()
    helpers: list[asyncio.subprocess.Process] = []
    workers: list[Worker] = []
    scratch = Path(tempfile.mkdtemp(prefix="recovery-"))
    log_dir = kept_logs or scratch / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS), stack_slice("recovery") as settings:
            mail_dir = scratch / "mail"
            mail_dir.mkdir()
            helpers, admin = await start_mail_and_rules(settings, str(mail_dir))
            await create_rules(admin)
            for module in WORKERS:
                env = service_environment(settings, ALERTING_INSTANCE_ID=f"bench-{service_name(module)}",
                                          ALERTING_CONSUMER_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS),
                                          **IMMEDIATE_ENVIRONMENT)
                workers.append(Worker(module, env, log_dir))
                await workers[-1].start()
            by_name = {worker.name: worker for worker in workers}

            # Warm-up, as end_to_end.py: the first alerts prove every service is up and has the rules.
            await run_load(settings, WARM_UP, 200.0, CLIENTS, NAMES, 0.0, seed=1, progress=False)
            await until_sent(settings, WARM_UP, 120)

            log(f"baseline: {plan.baseline_seconds:.0f} s at {RATE:.0f} alerts/s, no kill")
            baseline_ids = await steady_flow(settings, plan.baseline_seconds, time.perf_counter(), seed=2)
            await wait_all_sent(settings, WARM_UP + len(baseline_ids), 60)

            schedule = ", ".join(f"{name} at +{at:.0f} s" for name, at in plan.kills)
            log(f"kills: {plan.kill_phase_seconds:.0f} s at {RATE:.0f} alerts/s, SIGKILL {schedule}, "
                f"each restarted {RESTART_AFTER:.0f} s later")
            phase_start = datetime.now(UTC)
            started = time.perf_counter()
            async with asyncio.TaskGroup() as group:  # a failure of either cancels the other
                flow = group.create_task(steady_flow(settings, plan.kill_phase_seconds, started, seed=3))
                killing = group.create_task(kill_in_turn(by_name, started, plan))
            killed_ids, kills = flow.result(), killing.result()
            await wait_all_sent(settings, WARM_UP + len(baseline_ids) + len(killed_ids), 120)
            baseline = await outcomes(settings, baseline_ids)
            killed = await outcomes(settings, killed_ids)
            totals = (await fetch(settings, "SELECT count(*) AS n, count(*) FILTER (WHERE attempts > 1) AS retried "
                                            "FROM notifications"))[0]
            windows = kill_windows(killed, kills)
            explain(windows)
            good, verdict = report(plan, baseline, killed, windows, phase_start, totals["n"], totals["retried"],
                                   mail_dir)
            # Stopped before their database and topics go.
            await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)
            await asyncio.gather(*(stop_process(process) for process in reversed(helpers)), return_exceptions=True)
    finally:
        await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)
        await asyncio.gather(*(stop_process(process) for process in reversed(helpers)), return_exceptions=True)
        shutil.rmtree(scratch, ignore_errors=True)
        log(f"run time {time.perf_counter() - run_started:.0f} s, cleanup included"
            + (f"; the workers' logs are in {kept_logs}" if kept_logs else ""))
    print(verdict)
    return 0 if good else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=Path, help="keep the workers' logs in this directory")
    parser.add_argument("--smoke", action="store_true", help="short phases: that it runs, not how fast it recovers")
    arguments = parser.parse_args()
    try:
        sys.exit(asyncio.run(main(SMOKE if arguments.smoke else FULL, arguments.logs)))
    except asyncio.CancelledError:
        sys.exit(130)
