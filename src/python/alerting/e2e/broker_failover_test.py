"""Three Kafka brokers (`deploy/local-stack up --brokers 3`, a cluster of this test's own):
every topic has a replica on each and a write needs two. One broker, the sender group's
coordinator and a leader of every flow topic's partitions, is SIGKILLed while alerts flow
through every worker (each a real process), and restarted: every notification is recorded
once and SENT, and its email arrives once; none is lost, none duplicated."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError

import alerting.aggregator.main  # noqa: F401  (the workers run from these modules, in subprocesses)
import alerting.evaluator.main  # noqa: F401
import alerting.rule_updater.main  # noqa: F401
import alerting.sender.main  # noqa: F401
from alerting.common import topics
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.kafka_cluster import BROKERS, KafkaCluster, kafka_cluster
from alerting.testsupport.kafka_security import admin_client, broker_config
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
FLOW_TOPICS = (topics.ALERTS_NEW, topics.ALERTS_MATCHED, topics.NOTIFICATIONS_READY)
PLATFORM_TOPICS = (*topics.INPUT_TOPICS, *map(topics.dead_letter, topics.INPUT_TOPICS))
CLIENTS = 6
ALERTS_PER_ROUND = 20
ROUND_SECONDS = 0.5
# Published at once just before the kill: more than the pipeline can deliver in the moment the
# kill takes, so that the kill falls while alerts are in flight.
BURST = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with kafka_cluster(tmp_path_factory.mktemp("kafka-cluster")) as running:
        yield running


async def partitions(settings: StackSettings, *names: str) -> dict[tuple[str, int], dict[str, Any]]:
    """(topic, partition) → its leader, replicas and in-sync replicas, as the brokers' metadata
    has them; asked again while the broker asked is the one that is down."""

    async def describe() -> dict[tuple[str, int], dict[str, Any]]:
        async with admin_client(settings) as admin:
            described = await admin.describe_topics(list(names))
        return {(topic["topic"], partition["partition"]): partition
                for topic in described for partition in topic["partitions"]}

    for _ in range(50):
        try:
            return await describe()
        except KafkaError:
            await asyncio.sleep(0.2)
    return await describe()


async def sent(settings: StackSettings, alerts: list[alert_pb2.Alert]) -> int:
    """How many of these alerts' notifications are SENT."""
    [row] = await fetch(settings, "SELECT count(*) AS n FROM notifications "
                                  "WHERE status = 'SENT' AND alert_id = ANY($1)", [alert.alert_id for alert in alerts])
    return int(row["n"])


async def all_sent(settings: StackSettings, alerts: list[alert_pb2.Alert]) -> bool:
    return await sent(settings, alerts) == len(alerts)


async def test_every_topic_has_a_replica_on_each_broker_and_a_write_needs_two(
    cluster: KafkaCluster, base_settings: StackSettings
) -> None:
    settings = cluster.settings(base_settings)
    described = await partitions(settings, *PLATFORM_TOPICS)
    assert {topic for topic, _ in described} == set(PLATFORM_TOPICS)
    assert {(topic, tuple(sorted(p["replicas"])), tuple(sorted(p["isr"]))) for (topic, _), p in described.items()} == {
        (topic, (1, 2, 3), (1, 2, 3)) for topic in PLATFORM_TOPICS}
    assert await broker_config(
        settings, "default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
    ) == {"default.replication.factor": "3", "min.insync.replicas": "2", "offsets.topic.replication.factor": "3",
          "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2"}


async def test_a_broker_sigkilled_while_alerts_flow_and_restarted_loses_and_duplicates_nothing(
    cluster: KafkaCluster, stack_settings: StackSettings, tmp_path: Path
) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    # The test's own database and Redis keys, on the cluster's brokers and topics.
    settings = cluster.settings(stack_settings).model_copy(update={"smtp_port": smtp_port, "batch_max_records": 50})
    records = tmp_path / "kills"  # failpoints record here; none is armed, so none may
    records.mkdir()
    workers: list[asyncio.subprocess.Process] = []
    publishing: asyncio.Task[None] | None = None
    restarting: asyncio.Task[None] | None = None
    alerts: list[alert_pb2.Alert] = []  # every alert the brokers acknowledged
    numbers = itertools.count()  # each alert's name, and so its id, is its own
    stop_publishing = asyncio.Event()

    async def publish(publisher: AlertPublisher, count: int) -> None:
        batch = [build_alert("HIGH", f"src-{number % CLIENTS}", f"check-{number}")
                 for number in itertools.islice(numbers, count)]
        await publisher.publish(batch)
        alerts.extend(batch)

    async def keep_publishing(publisher: AlertPublisher) -> None:
        while not stop_publishing.is_set():
            await publish(publisher, ALERTS_PER_ROUND)
            await asyncio.sleep(ROUND_SECONDS)

    try:
        async with rule_service_stub(settings) as stub, AlertPublisher(settings) as publisher:
            client_of_source: dict[str, str] = {}
            for number in range(CLIENTS):
                client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=f"tenant-{number}"))
                await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                    client_id=client.client_id, source=f"src-{number}"))
                await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=client.client_id, severity="*", source=f"src-{number}", name="*",
                    emails=[f"oncall@tenant-{number}.io"]))
                client_of_source[f"src-{number}"] = client.client_id
            workers = [await spawn_service(module, service_environment(  # each with a metrics port of its own
                settings, ALERTING_RETRY_MAX_SECONDS="1", ALERTING_FAILPOINT_DIR=str(records), **IMMEDIATE_ENVIRONMENT))
                for module in WORKERS]
            publishing = asyncio.create_task(keep_publishing(publisher))

            async def flowing() -> bool:
                return await sent(settings, alerts) > 0

            await wait_until(flowing, 90, "the first SENT notification")

            # The victim coordinates the sender's group and leads partitions of every flow topic.
            async with admin_client(settings) as admin:
                victim = await admin.find_coordinator(settings.topic(topics.SENDER_GROUP))
            leaders = await partitions(settings, *FLOW_TOPICS)
            assert {topic for (topic, _), p in leaders.items() if p["leader"] == victim} == set(FLOW_TOPICS)
            victim_pid = cluster.broker_pid(victim)
            await publish(publisher, BURST)
            before_kill = list(alerts)
            await asyncio.to_thread(cluster.kill, victim)
            # The kill fell while alerts were in flight: some acknowledged before it were not SENT yet.
            assert 0 < await sent(settings, before_kill) < len(before_kill)

            async def fenced() -> bool:
                described = await partitions(settings, *FLOW_TOPICS)
                return not any(victim in p["isr"] for p in described.values())

            # Two brokers carry on: the victim leaves every partition's in-sync replicas, and every
            # alert acknowledged before the kill goes out while it is down.
            await wait_until(fenced, 60, f"broker {victim} out of every partition's in-sync replicas")
            await wait_until(lambda: all_sent(settings, before_kill), 90,
                             f"the {len(before_kill)} alerts acknowledged before the kill SENT")
            # `up` starts the broker again, then checks the cluster's topics, users and ACLs (admin
            # tools, a JVM each) while alerts flow through the restarted broker.
            restarting = asyncio.create_task(asyncio.to_thread(cluster.up))

            async def caught_up() -> bool:
                if restarting.done():
                    restarting.result()  # a failed `up` fails the test with its output
                described = await partitions(settings, *FLOW_TOPICS, "__consumer_offsets")
                return all(len(p["isr"]) == BROKERS for p in described.values())

            await wait_until(caught_up, 120, f"broker {victim} back in every partition's in-sync replicas")
            await asyncio.sleep(2)  # alerts keep flowing through the restarted broker
            stop_publishing.set()
            await publishing
            publishing = None
            await restarting
            assert cluster.broker_pid(victim) != victim_pid

            await wait_until(lambda: all_sent(settings, alerts), 120, f"{len(alerts)} SENT notifications")
            await asyncio.sleep(2)  # anything unexpected still in flight lands now
            rows = await fetch(settings, "SELECT client_id::text, alert_id, status, notification_id::text "
                                         "FROM notifications")
            offsets = await partitions(settings, "__consumer_offsets")
    finally:
        if publishing:
            publishing.cancel()
        if restarting:  # a thread: it ends when the script does, before the cluster goes down
            await asyncio.gather(restarting, return_exceptions=True)
        await asyncio.gather(*(stop_process(process) for process in workers), return_exceptions=True)
        sink.close()

    assert {(row["client_id"], row["alert_id"]) for row in rows} == {
        (client_of_source[alert.source], alert.alert_id) for alert in alerts}
    assert len(rows) == len(alerts)
    assert {row["status"] for row in rows} == {"SENT"}
    assert list(records.iterdir()) == []
    received = Counter(mail["Message-ID"] for mail in mailbox.read_all(tmp_path / "mail"))
    assert unexplained_copies(received, [row["notification_id"] for row in rows], read_resends(records)) == {}
    # The consumer groups' offsets were replicated to every broker too.
    assert {len(p["replicas"]) for p in offsets.values()} == {BROKERS}

