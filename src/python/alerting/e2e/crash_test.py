"""At-least-once under crashes: every worker runs as a real process and is killed with
SIGKILL at each step boundary while alerts flow; afterwards every expected notification
exists exactly once and is SENT, and no other exists. Expectations come from a naive
reference matcher written here, independent of the evaluator's index.

A kill counts only when the failpoint itself fired: it leaves a record (see
alerting.common.failpoints) of the notifications whose mail was accepted but not yet
recorded. The mailbox must then hold every SENT notification's email exactly once, plus
one copy for each record that lists it: no other duplicate is explained."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import alerting.aggregator.main  # noqa: F401  (the workers run from these modules, in subprocesses)
import alerting.evaluator.main  # noqa: F401
import alerting.rule_updater.main  # noqa: F401
import alerting.sender.main  # noqa: F401
from alerting.common.vocabulary import SEVERITIES, WILDCARD, severity_name
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.http_endpoints import Answer, serving
from alerting.testsupport.resends import read_resends, unexplained_copies
from alerting.testsupport.services import (
    IMMEDIATE_ENVIRONMENT,
    UNLIMITED_EMAILS_PER_HOUR,
    fetch,
    free_port,
    rule_service,
    rule_service_stub,
    service_environment,
    spawn_service,
    stop_process,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    alert_pb2,
    receiver_service_pb2,
    receiver_service_pb2_grpc,
    rule_pb2,
    rule_service_pb2,
    rule_service_pb2_grpc,
)

# An alert's line in a digest's email (email_message.digest_text).
DIGEST_ALERT_ID = re.compile(r"  alert (\S+)  rules ")
STEPS = {
    "alerting.rule_updater.main": ["after_consume", "after_db_write", "before_commit"],
    "alerting.evaluator.main": ["after_consume", "after_publish", "before_commit"],
    "alerting.aggregator.main": ["after_consume", "after_db_write", "after_publish", "before_commit"],
    "alerting.sender.main": ["after_consume", "after_send", "before_commit"],
}
ALERTS = 2500
SMTP_CONNECTIONS = 4
LIFE_SECONDS = 25  # a life that has not reached its failpoint by then ends cleanly
SOURCES = [f"src-{i}" for i in range(6)]
NAMES = [f"name-{i}" for i in range(6)]


@dataclass
class Supervisor:
    module: str
    env: dict[str, str]
    records: Path  # where failpoints record the kills
    kills: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None

    async def start(self, failpoint: str = "") -> asyncio.subprocess.Process:
        env = dict(self.env, ALERTING_FAILPOINT=failpoint, ALERTING_METRICS_PORT=str(free_port()))
        self.process = await spawn_service(self.module, env)
        return self.process

    async def crash_at_every_step(self, rng: random.Random, steps: list[str] | None = None) -> None:
        """One life per step (the module's, or `steps`), each ended by SIGKILL at that step;
        then a clean life."""
        for step in steps or STEPS[self.module]:
            process = await self.start(f"{step}:{rng.randint(2, 4)}")
            try:
                code = await asyncio.wait_for(process.wait(), LIFE_SECONDS)
            except TimeoutError:  # the step was not reached often enough: end this life cleanly
                await stop_process(process)
                continue
            if code == -signal.SIGKILL and (self.records / f"{process.pid}.{step}").exists():
                self.kills.append(step)
        await self.start()

    async def stop(self) -> None:
        if self.process:
            await stop_process(self.process)


def reference_matches(rules: list[rule_pb2.Rule], alert: alert_pb2.Alert) -> set[str]:
    """Clients with an enabled rule matching the alert: a plain scan."""
    severity = severity_name(alert.severity)
    return {
        rule.client_id for rule in rules
        if rule.enabled and all(pattern in (WILDCARD, value) for pattern, value in
                                ((rule.severity, severity), (rule.source, alert.source), (rule.name, alert.name)))
    }


async def create_rules(stub: rule_service_pb2_grpc.RuleServiceAsyncStub, rng: random.Random) -> list[rule_pb2.Rule]:
    rules = []
    for number in range(12):
        client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=f"tenant-{number}"))
        await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
            client_id=client.client_id, source="src-", prefix=True))
        for _ in range(rng.randint(1, 4)):
            pattern = [rng.choice([*values, WILDCARD]) for values in (SEVERITIES, SOURCES, NAMES)]
            if pattern == [WILDCARD] * 3:
                pattern[1] = rng.choice(SOURCES)
            rules.append(await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                client_id=client.client_id, severity=pattern[0], source=pattern[1], name=pattern[2],
                emails=[f"oncall@tenant-{number}.io"], disabled=rng.random() < 0.15)))
    return rules


async def touch_rules(
    stub: rule_service_pb2_grpc.RuleServiceAsyncStub,
    rules: list[rule_pb2.Rule],
    rng: random.Random,
    stop: asyncio.Event,
) -> None:
    """Rule changes that keep flowing during the run, without changing what matches."""
    versions = {rule.rule_id: rule.version for rule in rules}
    for counter in itertools.count():
        if stop.is_set():
            return
        rule = rng.choice(rules)
        updated = await stub.UpdateRule(rule_service_pb2.UpdateRuleRequest(
            rule_id=rule.rule_id, severity=rule.severity, source=rule.source, name=rule.name,
            emails=[rule.emails[0], f"extra-{counter}@example.io"], enabled=rule.enabled,
            expected_version=versions[rule.rule_id]))
        versions[rule.rule_id] = updated.version
        await asyncio.sleep(0.2)


# Where the sender is killed in the tests of its deliveries: after a send, four times, then
# before a commit.
SENDER_KILLS = ["after_send"] * 4 + ["before_commit"]


@asynccontextmanager
async def killing_the_sender(settings: StackSettings, others: list[Supervisor], sender: Supervisor,
                             rng: random.Random, alerts: list[alert_pb2.Alert], batch: int) -> AsyncIterator[None]:
    """The other workers started, and `alerts` published `batch` at a time, every 0.5 s,
    while the sender is killed at each of SENDER_KILLS; every process stopped on exit."""
    for supervisor in others:
        await supervisor.start()
    crashing = asyncio.create_task(sender.crash_at_every_step(rng, SENDER_KILLS))
    try:
        async with AlertPublisher(settings) as publisher:
            for start in range(0, len(alerts), batch):
                await publisher.publish(alerts[start:start + batch])
                await asyncio.sleep(0.5)
        await crashing
        yield
    finally:
        crashing.cancel()
        await asyncio.gather(*(s.stop() for s in [*others, sender]), return_exceptions=True)


async def sent_at_least(settings: StackSettings, count: int) -> bool:
    rows = await fetch(settings, "SELECT count(*) AS n FROM notifications WHERE status = 'SENT'")
    return rows[0]["n"] >= count


async def test_every_notification_exactly_once_and_sent_despite_sigkill_at_every_step(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    rng = random.Random(2026)
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_max_records": 50})
    records = tmp_path / "kills"
    records.mkdir()
    env = service_environment(
        settings,
        ALERTING_RETRY_MAX_SECONDS="1",
        ALERTING_SWEEP_AFTER_SECONDS="20",
        ALERTING_SWEEP_INTERVAL_SECONDS="5",
        ALERTING_INSTANCE_ID="crash-test",
        ALERTING_FAILPOINT_DIR=str(records),
        ALERTING_SMTP_CONNECTIONS=str(SMTP_CONNECTIONS),
        **IMMEDIATE_ENVIRONMENT,  # one email per notification, which the mailbox check counts
    )
    supervisors = [Supervisor(module, env, records) for module in STEPS]
    async with rule_service_stub(settings) as stub:
        rules = await create_rules(stub, rng)
        alerts = [build_alert(rng.choice(SEVERITIES), rng.choice(SOURCES), rng.choice(NAMES),
                              event_ts=f"2026-11-24T10:{i // 60 % 60:02d}:{i % 60:02d}Z") for i in range(ALERTS)]
        # Duplicates: some alerts are published twice.
        stream = alerts + rng.sample(alerts, ALERTS // 10)
        rng.shuffle(stream)

        stop_touching = asyncio.Event()
        toucher = asyncio.create_task(touch_rules(stub, rules, rng, stop_touching))
        crashing = [asyncio.create_task(s.crash_at_every_step(random.Random(i))) for i, s in enumerate(supervisors)]
        try:
            async with AlertPublisher(settings) as publisher:
                for start in range(0, len(stream), 100):
                    await publisher.publish(stream[start:start + 100])
                    await asyncio.sleep(0.8)
            await asyncio.gather(*crashing)
            stop_touching.set()
            await toucher

            expected = {(client, alert.alert_id) for alert in alerts for client in reference_matches(rules, alert)}
            assert len(expected) > 500

            async def all_sent() -> bool:
                rows = await fetch(settings, "SELECT count(*) AS n FROM notifications WHERE status = 'SENT'")
                return rows[0]["n"] >= len(expected)

            await wait_until(all_sent, 180, f"{len(expected)} SENT notifications")
            await asyncio.sleep(2)  # anything unexpected still in flight lands now
            rows = await fetch(
                settings, "SELECT client_id::text, alert_id, status, notification_id::text FROM notifications")
            assert {(row["client_id"], row["alert_id"]) for row in rows} == expected
            assert len(rows) == len(expected)
            assert {row["status"] for row in rows} == {"SENT"}

            received = Counter(mail["Message-ID"] for mail in mailbox.read_all(tmp_path / "mail"))
            # Only the sender's records list anything: what a kill left unrecorded or on the
            # wire, at most one per SMTP connection (each waits for its outcome to be recorded).
            resends = read_resends(records)
            assert resends.largest <= SMTP_CONNECTIONS
            assert unexplained_copies(received, [row["notification_id"] for row in rows], resends) == {}
        finally:
            stop_touching.set()
            for task in crashing:
                task.cancel()
            await asyncio.gather(*(s.stop() for s in supervisors), return_exceptions=True)
            sink.close()

    kills = {(s.module, step) for s in supervisors for step in s.kills}
    # Every worker died at least once at most of its steps; each kill is a real SIGKILL.
    for supervisor in supervisors:
        assert len(supervisor.kills) >= len(STEPS[supervisor.module]) - 1, (supervisor.module, supervisor.kills)
    assert len(kills) >= 10


async def test_digests_go_out_once_each_and_list_their_notifications_despite_sigkills_of_the_sender(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    """The sender, sending digests (groups by source, flushed every few seconds), killed
    after a server accepted a digest and before recording it, and before a commit: no
    notification lost, none in two digests, a digest sent again only as itself."""
    rng = random.Random(14)
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_max_records": 50})
    records = tmp_path / "kills"
    records.mkdir()
    env = service_environment(
        settings, ALERTING_RETRY_MAX_SECONDS="1", ALERTING_INSTANCE_ID="digest-crash-test",
        ALERTING_FAILPOINT_DIR=str(records), ALERTING_SMTP_CONNECTIONS=str(SMTP_CONNECTIONS),
        ALERTING_DEFAULT_GROUP_BY='["source"]', ALERTING_DEFAULT_GROUP_WAIT_SECONDS="1",
        ALERTING_DEFAULT_GROUP_INTERVAL_SECONDS="2", ALERTING_DIGEST_POLL_SECONDS="0.2",
        ALERTING_MAX_EMAILS_PER_HOUR=str(UNLIMITED_EMAILS_PER_HOUR))
    others = [Supervisor(module, env, records) for module in STEPS if module != "alerting.sender.main"]
    sender = Supervisor("alerting.sender.main", env, records)
    async with rule_service_stub(settings) as stub:
        rules = await create_rules(stub, rng)
        alerts = [build_alert(rng.choice(SEVERITIES), rng.choice(SOURCES), rng.choice(NAMES),
                              event_ts=f"2026-11-24T11:{i // 60 % 60:02d}:{i % 60:02d}Z") for i in range(1200)]
        try:
            async with killing_the_sender(settings, others, sender, rng, alerts, batch=40):
                expected = {(client, alert.alert_id) for alert in alerts
                            for client in reference_matches(rules, alert)}
                await wait_until(lambda: sent_at_least(settings, len(expected)), 180,
                                 f"{len(expected)} SENT notifications")
                await asyncio.sleep(2)  # anything unexpected still in flight lands now
                rows = await fetch(settings,
                                   "SELECT client_id::text, alert_id, status, digest_id::text FROM notifications")
                digests = await fetch(settings, "SELECT digest_id::text, status FROM digests")
        finally:
            sink.close()

    assert {(row["client_id"], row["alert_id"]) for row in rows} == expected
    assert len(rows) == len(expected)
    assert {row["status"] for row in rows} == {"SENT"}
    assert all(row["digest_id"] is not None for row in rows)
    # Each notification is listed in exactly one digest's email: its own.
    received = mailbox.read_all(tmp_path / "mail")
    listed_in: dict[tuple[str, str], set[str]] = {}
    for mail in received:
        for alert_id in DIGEST_ALERT_ID.findall(mail.get_content()):
            listed_in.setdefault((str(mail["To"]), alert_id), set()).add(mail["Message-ID"])
    address = {client: f"oncall@tenant-{number}.io" for number, client in enumerate(
        dict.fromkeys(rule.client_id for rule in rules))}
    assert listed_in == {(address[row["client_id"]], row["alert_id"]): {f"<{row['digest_id']}@alerting.local>"}
                         for row in rows}
    # A copy of a digest's email only where a kill left it accepted (or on the wire) unrecorded.
    resends = read_resends(records)
    assert resends.largest <= SMTP_CONNECTIONS
    sent = [digest["digest_id"] for digest in digests if digest["status"] == "SENT"]
    assert {digest["status"] for digest in digests} == {"SENT"}
    assert unexplained_copies(Counter(mail["Message-ID"] for mail in received), sent, resends) == {}
    assert sender.kills.count("after_send") >= 3, sender.kills


async def test_webhooks_get_every_notification_despite_sigkills_of_the_sender_and_copies_share_its_key(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    """The sender, delivering to webhooks, killed after a receiver accepted a request and
    before recording it, and before a commit: every notification reaches its tenant's
    webhook, and a request comes again only with the same Idempotency-Key, where a kill left
    it accepted or unsure."""
    rng = random.Random(15)
    records = tmp_path / "kills"
    records.mkdir()
    settings = stack_settings.model_copy(update={"batch_max_records": 50})
    env = service_environment(settings, **IMMEDIATE_ENVIRONMENT, ALERTING_RETRY_MAX_SECONDS="1",
                              ALERTING_INSTANCE_ID="webhook-crash-test", ALERTING_FAILPOINT_DIR=str(records))
    others = [Supervisor(module, env, records) for module in STEPS if module != "alerting.sender.main"]
    sender = Supervisor("alerting.sender.main", env, records)
    with serving({f"/tenant-{n}": [Answer(200)] for n in range(4)}) as endpoints:
        async with rule_service(settings) as service, service.channel() as channel:
            rules = rule_service_pb2_grpc.RuleServiceStub(channel)
            hooks = receiver_service_pb2_grpc.ReceiverServiceStub(channel)
            path_of: dict[str, str] = {}
            for number in range(4):
                client = await rules.CreateClient(rule_service_pb2.CreateClientRequest(name=f"tenant-{number}"))
                await rules.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                    client_id=client.client_id, source=SOURCES[number]))
                hook = await hooks.CreateReceiver(receiver_service_pb2.CreateReceiverRequest(
                    client_id=client.client_id, name="hook", kind=receiver_service_pb2.RECEIVER_KIND_WEBHOOK,
                    url=endpoints.url(f"/tenant-{number}")))
                await rules.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity=WILDCARD, source=SOURCES[number], name=WILDCARD,
                    receiver_ids=[hook.receiver.receiver_id]))
                path_of[client.client_id] = f"/tenant-{number}"
            alerts = [build_alert(rng.choice(SEVERITIES), SOURCES[i % 4], rng.choice(NAMES),
                                  event_ts=f"2026-11-25T11:{i // 60 % 60:02d}:{i % 60:02d}Z") for i in range(600)]
            async with killing_the_sender(settings, others, sender, rng, alerts, batch=30):
                await wait_until(lambda: sent_at_least(settings, len(alerts)), 180, f"{len(alerts)} SENT notifications")
                await asyncio.sleep(2)  # anything unexpected still in flight lands now
                rows = await fetch(settings, "SELECT client_id::text, notification_id::text, status FROM notifications")

    assert len(rows) == len(alerts) and {row["status"] for row in rows} == {"SENT"}
    keys_by_path = {path: Counter(request.headers["idempotency-key"] for request in endpoints.requests_to(path))
                    for path in path_of.values()}
    # Every notification reached its own tenant's webhook, and nothing else did.
    assert {path: set(keys) for path, keys in keys_by_path.items()} == {
        path: {row["notification_id"] for row in rows if path_of[row["client_id"]] == path}
        for path in path_of.values()}
    # Copies as a Message-ID would be counted: the Idempotency-Key is the same id.
    received = Counter({f"<{key}@alerting.local>": copies for keys in keys_by_path.values()
                        for key, copies in keys.items()})
    assert unexplained_copies(received, [row["notification_id"] for row in rows], read_resends(records)) == {}
    assert sender.kills.count("after_send") >= 3, sender.kills
