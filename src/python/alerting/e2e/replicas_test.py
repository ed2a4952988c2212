"""Scale-out on one machine: two instances of every worker, each its own process and a
static member of its consumer group under its own instance id, share the work; SIGKILLs
of one instance of each, restarted a second later, lose and duplicate nothing.

The sender instance dies at its `after_send` failpoint (mail accepted, not recorded yet),
which records what it held: the mailbox must hold every email once, plus one copy for
each notification such a record lists, exactly."""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import alerting.aggregator.main  # noqa: F401  (the workers run from these modules, in subprocesses)
import alerting.evaluator.main  # noqa: F401
import alerting.rule_updater.main  # noqa: F401
import alerting.sender.main  # noqa: F401
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.resends import read_resends, unexplained_copies
from alerting.testsupport.services import (
    IMMEDIATE_ENVIRONMENT,
    fetch,
    free_port,
    rule_service_stub,
    service_environment,
    spawn_service,
    stop_process,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import alert_pb2, rule_service_pb2

WORKERS = ("alerting.rule_updater.main", "alerting.evaluator.main", "alerting.aggregator.main",
           "alerting.sender.main")
CLIENTS = 12
ALERTS_PER_ROUND = 150


@dataclass
class Instance:
    module: str
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None

    @property
    def metrics_port(self) -> int:
        return int(self.env["ALERTING_METRICS_PORT"])

    async def start(self, **extra: str) -> None:
        self.process = await spawn_service(self.module, dict(self.env, **extra))

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL

    async def processed(self) -> int:
        """Messages this process handled since it started, from its own /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        return sum(int(float(value)) for value in
                   re.findall(r'^alerting_messages_processed_total\{[^}]*\} (\S+)$', body, flags=re.M))


async def test_two_instances_of_every_worker_share_the_work_and_survive_sigkills(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_max_records": 50})
    records = tmp_path / "kills"
    records.mkdir()
    instances = [
        Instance(module, service_environment(settings, ALERTING_INSTANCE_ID=f"replica-{number}",
                                             ALERTING_RETRY_MAX_SECONDS="1", ALERTING_FAILPOINT_DIR=str(records),
                                             **IMMEDIATE_ENVIRONMENT))
        for module in WORKERS for number in (1, 2)
    ]
    doomed_sender = next(i for i in instances if i.module == "alerting.sender.main"
                         and i.env["ALERTING_INSTANCE_ID"] == "replica-1")
    try:
        async with rule_service_stub(settings) as stub:
            for number in range(CLIENTS):
                client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=f"tenant-{number}"))
                await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                    client_id=client.client_id, source=f"src-{number}"))
                await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity="*", source=f"src-{number}", name="*",
                    emails=[f"oncall@tenant-{number}.io"]))
            for instance in instances:
                await instance.start(**({"ALERTING_FAILPOINT": "after_send:1"} if instance is doomed_sender else {}))
            alerts: list[alert_pb2.Alert] = []
            assert doomed_sender.process is not None
            async with AlertPublisher(settings) as publisher:

                async def publish_round() -> None:
                    batch = [build_alert("HIGH", f"src-{n % CLIENTS}", f"check-{len(alerts)}-{n}")
                             for n in range(ALERTS_PER_ROUND)]
                    alerts.extend(batch)
                    await publisher.publish(batch)

                # Alerts flow until the doomed sender has had notifications to send, and died at
                # its failpoint (however late it joined its group), at most for a minute ...
                deadline = asyncio.get_running_loop().time() + 60
                while doomed_sender.process.returncode is None:
                    assert asyncio.get_running_loop().time() < deadline, "the sender never reached its failpoint"
                    await publish_round()
                    await asyncio.sleep(1)
                assert doomed_sender.process.returncode == -signal.SIGKILL
                # ... then one instance of each of the other workers dies too; a supervisor
                # restarts all of them a second later, and alerts keep flowing.
                killed = [instance for instance in instances if instance is not doomed_sender
                          and instance.env["ALERTING_INSTANCE_ID"] == "replica-1"]
                for instance in killed:
                    await instance.kill()
                await publish_round()
                await asyncio.sleep(1)
                for instance in [*killed, doomed_sender]:
                    await instance.start()
                for _ in range(2):
                    await publish_round()
                    await asyncio.sleep(1)

            async def all_sent() -> bool:
                [row] = await fetch(settings, "SELECT count(*) AS n FROM notifications WHERE status = 'SENT'")
                return row["n"] == len(alerts)

            await wait_until(all_sent, 120, f"{len(alerts)} SENT notifications")
            rows = await fetch(settings, "SELECT alert_id, notification_id::text FROM notifications")
            # The work was shared: both instances of every partitioned worker handled messages
            # (the rule-updater reads the one partition of rule.changed: one instance at a time).
            shares = {(instance.module, instance.env["ALERTING_INSTANCE_ID"]): await instance.processed()
                      for instance in instances if instance.module != "alerting.rule_updater.main"}
    finally:
        await asyncio.gather(*(stop_process(i.process) for i in instances if i.process), return_exceptions=True)
        sink.close()
    assert sorted(row["alert_id"] for row in rows) == sorted(alert.alert_id for alert in alerts)
    assert all(handled > 0 for handled in shares.values()), shares
    [record] = records.iterdir()  # the sender's death at its failpoint, nothing else
    assert record.name.endswith(".after_send")
    received = Counter(mail["Message-ID"] for mail in mailbox.read_all(tmp_path / "mail"))
    assert unexplained_copies(received, [row["notification_id"] for row in rows], read_resends(records)) == {}
