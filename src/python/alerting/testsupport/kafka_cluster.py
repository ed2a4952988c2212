"""A Kafka cluster of three brokers of a test's own: `deploy/local-stack up --brokers 3
--kafka-only` with a state folder and ports of its own (the shared stack's broker is left
alone), beside the shared stack's PostgreSQL and Redis; `deploy/local-stack down` ends it."""

from __future__ import annotations

import os
import random
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from alerting.testsupport.stack import StackSettings
from alerting.testsupport.tls import local_stack_script

BROKERS = 3
# A first `up` formats and starts three brokers and makes the topics, users and ACLs, one
# admin tool (a JVM) at a time: minutes on a busy 2-core machine.
UP_SECONDS = 420
DOWN_SECONDS = 120


def free_port_block(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free now, below the
    kernel's ephemeral range (where clients' ports come from); tried in a random order, so
    that two tests starting at once are unlikely to pick the same."""
    bases = list(range(21000, 32000, 50))
    random.shuffle(bases)
    for base in bases:
        probes = [socket.socket() for _ in range(count)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports between 21000 and 32000")


@dataclass(frozen=True)
class KafkaCluster:
    state: Path  # the script's ALERTING_STACK_STATE
    environment: dict[str, str]  # the script's: its state folder and ports

    def script(self, *arguments: str, timeout: float = UP_SECONDS) -> str:
        """Run deploy/local-stack on this cluster; its standard output."""
        done = subprocess.run(["bash", local_stack_script(), *arguments], env=self.environment, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"deploy/local-stack {' '.join(arguments)} exited with {done.returncode}:\n"
                               f"{done.stdout}{done.stderr}")
        return done.stdout

    def up(self) -> None:
        """Start every broker that is not running; when this returns, all are registered."""
        self.script("up", "--brokers", str(BROKERS), "--kafka-only")

    def broker_pid(self, broker: int) -> int:
        return int((self.state / f"kafka-{broker}.pid").read_text())

    def kill(self, broker: int) -> None:
        """SIGKILL a broker, and wait until it is dead."""
        pid = self.broker_pid(broker)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _dead(pid):
            assert time.monotonic() < deadline, f"broker {broker} (pid {pid}) survived SIGKILL"
            time.sleep(0.05)

    def settings(self, settings: StackSettings) -> StackSettings:
        """`settings` on this cluster: its brokers, its admin login (`deploy/local-stack env`), and
        its own topics, those of deploy/topics.txt unprefixed (the cluster is the test's alone)."""
        exported = dict(word.split("=", 1) for line in self.script("env").splitlines()
                        for word in shlex.split(line)[1:])
        return settings.model_copy(update={
            "kafka_bootstrap": exported["ALERTING_KAFKA_BOOTSTRAP"],
            "kafka_sasl_username": exported["ALERTING_KAFKA_SASL_USERNAME"],
            "kafka_sasl_password": SecretStr(Path(exported["ALERTING_KAFKA_SASL_PASSWORD_FILE"]).read_text().strip()),
            "kafka_ssl_ca_file": exported["ALERTING_KAFKA_SSL_CA_FILE"],
            "topic_prefix": "",
        })


def _dead(pid: int) -> bool:
    """Gone, or a zombie that nobody has reaped yet (the script that started it has exited)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"


@contextmanager
def kafka_cluster(folder: Path) -> Iterator[KafkaCluster]:
    """Three brokers with their state in `folder`, up; down (their data deleted) on exit."""
    base = free_port_block(2 * BROKERS)  # broker n: its controller on base + 2(n-1), SASL_SSL on the port above
    cluster = KafkaCluster(folder, {**os.environ, "ALERTING_STACK_STATE": str(folder),
                                    "ALERTING_KAFKA_CONTROLLER_PORT": str(base),
                                    "ALERTING_KAFKA_SASL_PORT": str(base + 1)})
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.script("down", timeout=DOWN_SECONDS)
