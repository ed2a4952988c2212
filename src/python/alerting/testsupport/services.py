"""Running the platform's services inside a test, on the real stack."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import grpc
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from pydantic import SecretStr

import alerting.aggregator.main
import alerting.evaluator.main
import alerting.rule_updater.main
import alerting.sender.main
from alerting.common import db
from alerting.common.grpc_client import aio_channel
from alerting.common.kafka import OutgoingMessage, kafka_client_options, make_producer, publish_all
from alerting.common.service import Lifecycle
from alerting.common.settings import (
    AggregatorSettings,
    DatabaseSettings,
    RuleServiceSettings,
    SenderSettings,
    ServiceSettings,
    secret_value,
)
from alerting.rule_service.access import new_key
from alerting.testsupport.stack import StackSettings
from alerting.testsupport.tls import certificates
from alerting.v1 import rule_service_pb2_grpc

S = TypeVar("S", bound=ServiceSettings)


@asynccontextmanager
async def running(
    run: Callable[[S, Lifecycle], Coroutine[Any, Any, None]], settings: S
) -> AsyncIterator[Lifecycle]:
    """Run a service's `run(settings, lifecycle)` as a task; stop it gracefully on exit."""
    lifecycle = Lifecycle()
    task = asyncio.create_task(run(settings, lifecycle))
    try:
        yield lifecycle
        if task.done():
            task.result()  # a service that died early fails the test with its own error
    finally:
        lifecycle.stop.set()
        await asyncio.wait_for(task, 60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def service_environment(settings: StackSettings, **extra: str) -> dict[str, str]:
    """The environment of a service process that runs on `settings`' slice of the stack."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALERTING_")}
    env.update({
        "PYTHONPATH": os.pathsep.join(sys.path),
        "ALERTING_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ALERTING_TOPIC_PREFIX": settings.topic_prefix,
        "ALERTING_REDIS_URL": settings.redis_url,
        "ALERTING_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "ALERTING_DATABASE_URL": settings.database_url,
        "ALERTING_SMTP_PORT": str(settings.smtp_port),
        "ALERTING_BATCH_MAX_RECORDS": str(settings.batch_max_records),
        "ALERTING_OTEL_SAMPLE_RATIO": str(settings.otel_sample_ratio),
        "ALERTING_METRICS_PORT": str(free_port()),
        **database_logins(settings),
        **kafka_and_redis_logins(settings),
        **RECEIVERS_ENVIRONMENT,
    })
    env.update(extra)
    return env


# Tests' receivers are real HTTP servers on loopback, which an operator setting must allow.
RECEIVER_SECRET_KEY = "receiver secrets of the test suite, 32+ characters"
RECEIVERS_SETTINGS = {"receiver_secret_key": SecretStr(RECEIVER_SECRET_KEY), "outbound_allow_http": True,
                      "outbound_allowed_networks": ("127.0.0.0/8",)}
RECEIVERS_ENVIRONMENT = {"ALERTING_RECEIVER_SECRET_KEY": RECEIVER_SECRET_KEY, "ALERTING_OUTBOUND_ALLOW_HTTP": "true",
                         "ALERTING_OUTBOUND_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}


def kafka_and_redis_logins(settings: StackSettings) -> dict[str, str]:
    """The Kafka and Redis security settings and the snapshot's key as ALERTING_* variables,
    for a service process."""
    return {
        "ALERTING_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "ALERTING_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "ALERTING_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "ALERTING_KAFKA_SASL_PASSWORD": secret_value(settings.kafka_sasl_password),
        "ALERTING_KAFKA_SSL_CA_FILE": settings.kafka_ssl_ca_file,
        "ALERTING_DEAD_LETTER_REPLAY_KAFKA_SASL_USERNAME": settings.dead_letter_replay_kafka_sasl_username,
        "ALERTING_DEAD_LETTER_REPLAY_KAFKA_SASL_PASSWORD":
            secret_value(settings.dead_letter_replay_kafka_sasl_password),
        "ALERTING_REDIS_USERNAME": settings.redis_username,
        "ALERTING_REDIS_PASSWORD": secret_value(settings.redis_password),
        "ALERTING_REDIS_CA_FILE": settings.redis_ca_file,
        "ALERTING_RULE_SNAPSHOT_KEY": secret_value(settings.rule_snapshot_key),
    }


def database_logins(settings: StackSettings) -> dict[str, str]:
    """Each service role's login as ALERTING_* variables: a service process logs in as its
    role with what the test's settings say."""
    env = {}
    for role in db.SERVICE_ROLES:
        user, password = db.login(settings, role)
        env[f"ALERTING_{role.value.upper()}_DATABASE_USER"] = user or ""
        env[f"ALERTING_{role.value.upper()}_DATABASE_PASSWORD"] = password or ""
    return env


# For tests of delivery itself (and not of policies): every client's default policy sends
# each notification alone, at once, and no hourly limit holds any back.
UNLIMITED_EMAILS_PER_HOUR = 1_000_000


def immediate_sender(settings: StackSettings, **overrides: Any) -> SenderSettings:
    """A sender's settings on `settings`' slice of the stack, with the immediate policy and
    no limit for every client."""
    return SenderSettings(**{**settings.model_dump(), "default_group_wait_seconds": 0,
                             "max_emails_per_hour": UNLIMITED_EMAILS_PER_HOUR, **overrides})


@asynccontextmanager
async def running_pipeline(settings: StackSettings, sender: SenderSettings | None = None) -> AsyncIterator[None]:
    """The pipeline's workers (rule-updater, evaluator, aggregator and sender: `sender`, or the
    immediate one) running as tasks on `settings`' slice of the stack, stopped on exit."""
    async with (
        running(alerting.rule_updater.main.run, settings),
        running(alerting.evaluator.main.run, settings),
        running(alerting.aggregator.main.run, AggregatorSettings(**settings.model_dump())),
        running(alerting.sender.main.run, sender or immediate_sender(settings)),
    ):
        yield


# The same for a spawned sender, as its environment.
IMMEDIATE_ENVIRONMENT = {"ALERTING_DEFAULT_GROUP_WAIT_SECONDS": "0",
                         "ALERTING_MAX_EMAILS_PER_HOUR": str(UNLIMITED_EMAILS_PER_HOUR)}


async def spawn_service(module: str, env: dict[str, str], quiet: bool = True) -> asyncio.subprocess.Process:
    """A service (`python -m <module>`) as a real process, as the platform runs it."""
    output = asyncio.subprocess.DEVNULL if quiet else None
    return await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=env, stdout=output, stderr=output)


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 30) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it takes longer than `timeout`."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()


async def forward_port(listen_port: int, target: str) -> asyncio.Server:
    """A TCP forwarder from 127.0.0.1:listen_port to target ("host:port"): a dependency that
    comes back after an outage, for a client configured with the forwarder's address."""
    host, port = target.rsplit(":", 1)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True)

    return await asyncio.start_server(forward, "127.0.0.1", listen_port)


async def wait_for_port(port: int, timeout: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:port."""

    async def accepting() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await wait_until(accepting, timeout, f"a server on port {port}")


@dataclass(frozen=True)
class RuleServiceUnderTest:
    """A running rule-service: its settings, and what a client needs to reach it over TLS."""

    settings: RuleServiceSettings
    client_settings: StackSettings  # its address and CA, and the bootstrap admin key as api_key
    admin_key: str
    lifecycle: Lifecycle

    def channel(self, api_key: str | None = None) -> grpc.aio.Channel:
        """A channel presenting `api_key` (default: the admin key; "" presents none)."""
        return aio_channel(self.client_settings, api_key=api_key)


@asynccontextmanager
async def rule_service(settings: StackSettings, **overrides: Any) -> AsyncIterator[RuleServiceUnderTest]:
    """A running rule-service (with its outbox relay) on a free port, serving TLS with a
    test certificate, its admin key bootstrapped; `overrides` change its settings."""
    from alerting.rule_service.main import run

    tls = certificates()
    admin_key = new_key().key
    port = free_port()
    service_settings = RuleServiceSettings(**{
        **settings.model_dump(), "grpc_port": port, "rule_service_tls": True, "tls_cert_file": tls.cert,
        "tls_key_file": tls.key, "tls_ca_file": tls.ca, "bootstrap_admin_key": SecretStr(admin_key),
        **RECEIVERS_SETTINGS, **overrides})
    client_settings = settings.model_copy(update={
        "rule_service_address": f"127.0.0.1:{port}", "rule_service_tls": service_settings.rule_service_tls,
        "tls_ca_file": tls.ca, "api_key": SecretStr(admin_key)})
    async with running(run, service_settings) as lifecycle:
        under_test = RuleServiceUnderTest(service_settings, client_settings, admin_key, lifecycle)
        async with under_test.channel() as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
        yield under_test


@dataclass(frozen=True)
class SpawnedRuleService:
    """A rule-service running as a process of its own, as the platform runs it."""

    process: asyncio.subprocess.Process
    client_settings: StackSettings  # its address and CA, and its bootstrap admin key as api_key


async def spawn_rule_service(settings: StackSettings, folder: str, **extra: str) -> SpawnedRuleService:
    """A rule-service process (with its outbox relay) on a free port, serving TLS with a test
    certificate, its admin key bootstrapped from a file in `folder`; it answers when this returns."""
    tls = certificates()
    admin_key = new_key().key
    key_file = os.path.join(folder, "admin.key")
    with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(admin_key)
    port = free_port()
    process = await spawn_service("alerting.rule_service.main", service_environment(
        settings, ALERTING_GRPC_PORT=str(port), ALERTING_RULE_SERVICE_TLS="true", ALERTING_TLS_CERT_FILE=tls.cert,
        ALERTING_TLS_KEY_FILE=tls.key, ALERTING_TLS_CA_FILE=tls.ca, ALERTING_BOOTSTRAP_ADMIN_KEY_FILE=key_file,
        **extra))
    client_settings = settings.model_copy(update={
        "rule_service_address": f"127.0.0.1:{port}", "rule_service_tls": True, "tls_ca_file": tls.ca,
        "api_key": SecretStr(admin_key)})
    async with aio_channel(client_settings) as channel:
        await asyncio.wait_for(channel.channel_ready(), 60)
    return SpawnedRuleService(process, client_settings)


@asynccontextmanager
async def rule_service_stub(settings: StackSettings) -> AsyncIterator[rule_service_pb2_grpc.RuleServiceAsyncStub]:
    """A running rule-service and a client of it with the admin key."""
    async with rule_service(settings) as service, service.channel() as channel:
        yield rule_service_pb2_grpc.RuleServiceStub(channel)


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def fetch(settings: DatabaseSettings, query: str, *args: object) -> list[asyncpg.Record]:
    """The rows of a query run as the owner, who may read every table that services write."""
    connection = await db.connect(settings, db.DatabaseRole.OWNER)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


async def send(settings: StackSettings, topic: str, values: list[bytes], keys: list[bytes] | None = None) -> None:
    """Publish raw values (test input, valid or not) to one of the platform topics, with
    keys if given (the compacted `rule.changed` requires them)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        await publish_all(producer, [
            OutgoingMessage(settings.topic(topic), value, key=None if keys is None else keys[number])
            for number, value in enumerate(values)
        ])
    finally:
        await producer.stop()


_UNPARSABLE_PRODUCER = """
import asyncio, json, sys
import aiokafka.producer.message_accumulator, aiokafka.producer.producer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from alerting.common.kafka import make_producer
from alerting.common.settings import KafkaSettings

class NotUtf8(str):
    def encode(self, encoding="utf-8", errors="strict"):
        return b"\\xff\\xfe" + super().encode(encoding, errors)

# aiokafka's own builder refuses such a header key; its pure-Python one writes what it is given.
for module in (aiokafka.producer.message_accumulator, aiokafka.producer.producer):
    module.DefaultRecordBatchBuilder = _DefaultRecordBatchBuilderPy

async def main(order):
    producer = make_producer(KafkaSettings())
    await producer.start()
    try:
        for value, key, unparsable in order["records"]:
            headers = [(NotUtf8("x"), b"v")] if unparsable else []
            sent = await producer.send(order["topic"], bytes.fromhex(value), key=key and bytes.fromhex(key),
                                       partition=order["partition"], headers=headers)
            await sent
    finally:
        await producer.stop()

asyncio.run(main(json.load(sys.stdin)))
"""


async def send_unparsable(settings: StackSettings, topic: str, values: list[bytes], unparsable: set[int],
                          partition: int = 0, keys: list[bytes] | None = None) -> None:
    """Publish raw values to one partition, each in its own record batch, those at the
    positions in `unparsable` with a header key that is not UTF-8: what a producer other
    than the platform's can write (librdkafka takes any bytes), and aiokafka cannot parse.
    Written by a producer in a process of its own, the only one whose record builder is
    swapped for one that writes such keys."""
    order = {"topic": settings.topic(topic), "partition": partition, "records": [
        (value.hex(), None if keys is None else keys[number].hex(), number in unparsable)
        for number, value in enumerate(values)]}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _UNPARSABLE_PRODUCER, env=service_environment(settings), stdin=asyncio.subprocess.PIPE)
    await process.communicate(json.dumps(order).encode())
    assert process.returncode == 0, f"the producer of unparsable records exited with {process.returncode}"


async def read(settings: StackSettings, topic: str, count: int) -> list[ConsumerRecord]:
    """At least `count` records of a topic, waiting for them, and every other record it
    holds by then: read from the start by a fresh consumer group."""
    consumer = AIOKafkaConsumer(settings.topic(topic), **kafka_client_options(settings),
                                auto_offset_reset="earliest", group_id=f"reader-{uuid.uuid4().hex}")
    await consumer.start()
    records: list[ConsumerRecord] = []

    async def more() -> None:
        batch = await consumer.getmany(timeout_ms=1000)
        records.extend(record for rs in batch.values() for record in rs)

    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                await more()
            ends = await consumer.end_offsets(list(consumer.assignment()))
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                await more()
    finally:
        await consumer.stop()
    return records


async def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: the status code and the body (a service's /readyz, /livez, /metrics)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        response = (await reader.read()).decode()
    finally:
        writer.close()
    status_line, _, body = response.partition("\r\n\r\n")
    return int(status_line.split()[1]), body
