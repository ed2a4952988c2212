"""Kafka security on the real broker: the local stack's SASL_SSL listener authenticates each
service's principal with SCRAM over verified TLS, and its ACLs let each principal write,
read and join exactly what its service needs.

The stack's ACLs name the platform's real topics, which tests must not write into (a
running platform reads them): the ACLs are granted again on this test's prefixed topics and
groups, and the principals act there."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from pydantic import SecretStr

from alerting.common.kafka import kafka_client_options, make_consumer, make_producer, stop_consumer
from alerting.common.settings import KafkaSettings
from alerting.common.topics import (
    AGGREGATOR_GROUP,
    ALERTS_MATCHED,
    ALERTS_NEW,
    EVALUATOR_GROUP,
    INPUT_TOPICS,
    NOTIFICATIONS_READY,
    RULE_CHANGED,
    RULE_UPDATER_GROUP,
    SENDER_GROUP,
    dead_letter,
)
from alerting.testsupport.kafka_security import (
    PLATFORM_TOPICS,
    PRINCIPALS,
    Acl,
    SaslListener,
    as_principal,
    broker_acls,
    broker_config,
    platform_acls_granted,
    principal_password,
    sasl_listener,
)
from alerting.testsupport.services import send
from alerting.testsupport.stack import TEST_PARTITIONS, StackSettings

# Who may do what, by the design in docs/architecture/INFRASTRUCTURE.md (deploy/kafka/acls.txt).
WRITES = {
    # The outbox relay, and nothing else: the DeadLetterService replays to the topic a dead
    # letter came from as a principal of its own.
    "rule-service": {RULE_CHANGED},
    "dead-letter-replay": {ALERTS_NEW, ALERTS_MATCHED, NOTIFICATIONS_READY},
    "rule-updater": {dead_letter(RULE_CHANGED)},
    "evaluator": {ALERTS_MATCHED, dead_letter(ALERTS_NEW)},
    "aggregator": {NOTIFICATIONS_READY, dead_letter(ALERTS_MATCHED)},
    "sender": {dead_letter(NOTIFICATIONS_READY)},
    "producer": {ALERTS_NEW},
}
READS = {
    "rule-service": {dead_letter(topic) for topic in INPUT_TOPICS},
    "dead-letter-replay": set(),
    "rule-updater": {RULE_CHANGED},
    "evaluator": {ALERTS_NEW, RULE_CHANGED},
    "aggregator": {ALERTS_MATCHED},
    "sender": {NOTIFICATIONS_READY},
    "producer": set(),
}
GROUPS = {  # group: (the principal that consumes in it, what it reads)
    RULE_UPDATER_GROUP: ("rule-updater", RULE_CHANGED),
    EVALUATOR_GROUP: ("evaluator", ALERTS_NEW),
    AGGREGATOR_GROUP: ("aggregator", ALERTS_MATCHED),
    SENDER_GROUP: ("sender", NOTIFICATIONS_READY),
}
# The aggregator's sweeper reads the sender group's committed offsets.
GROUP_DESCRIBERS = {SENDER_GROUP: "aggregator"}


def expected_acls() -> set[Acl]:
    return (
        {Acl("TOPIC", topic, f"User:{who}", "WRITE") for who, written in WRITES.items() for topic in written}
        | {Acl("TOPIC", topic, f"User:{who}", "READ") for who, read in READS.items() for topic in read}
        | {Acl("GROUP", group, f"User:{who}", "READ") for group, (who, _) in GROUPS.items()}
        | {Acl("GROUP", group, f"User:{who}", "DESCRIBE") for group, who in GROUP_DESCRIBERS.items()}
    )


@pytest.fixture
async def listener(base_settings: StackSettings) -> SaslListener:
    return await sasl_listener(base_settings)


@pytest.fixture
async def granted(stack_settings: StackSettings) -> AsyncIterator[None]:
    """The stack's ACLs, on this test's topics and groups."""
    async with platform_acls_granted(stack_settings):
        yield


# ---------------------------------------------------------------- the client options
def test_plaintext_clients_get_the_bootstrap_servers_and_nothing_else() -> None:
    plaintext = KafkaSettings(kafka_bootstrap="k1:9092,k2:9092", kafka_security_protocol="PLAINTEXT")
    assert kafka_client_options(plaintext) == {
        "bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_clients_authenticate_and_verify_the_broker() -> None:
    options = kafka_client_options(KafkaSettings(
        kafka_bootstrap="kafka:9094", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="evaluator", kafka_sasl_password=SecretStr("s3cret")))
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "kafka:9094", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "evaluator", "sasl_plain_password": "s3cret"}
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_sasl_without_a_username_or_password_is_refused_at_start_up() -> None:
    complete = KafkaSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="sender",
                             kafka_sasl_password=SecretStr("x"))
    for missing in ({"kafka_sasl_username": ""}, {"kafka_sasl_password": None}):
        with pytest.raises(ValueError, match="needs ALERTING_KAFKA_SASL_USERNAME and ALERTING_KAFKA_SASL_PASSWORD"):
            kafka_client_options(complete.model_copy(update=missing))


def test_a_missing_ca_file_is_an_error_not_an_unverified_link() -> None:
    with pytest.raises(FileNotFoundError):
        kafka_client_options(KafkaSettings(kafka_security_protocol="SSL", kafka_ssl_ca_file="/nonexistent/ca.pem"))


# ---------------------------------------------------------------- the broker
# Where the stack's PLAINTEXT listener was, whose anonymous clients were super users.
OLD_PLAINTEXT_LISTENER = "127.0.0.1:9092"


async def test_no_listener_lets_anyone_in_unauthenticated(base_settings: StackSettings, listener: SaslListener) -> None:
    config = await broker_config(base_settings, "listeners", "listener.security.protocol.map")
    protocols = dict(item.split(":") for item in config["listener.security.protocol.map"].split(","))
    addresses = [address.split("://", 1)[1] for address in config["listeners"].split(",")]
    assert {protocols[address.split("://")[0]] for address in config["listeners"].split(",")} == {"SASL_SSL"}
    # Every listener, the controller's among them, and the old PLAINTEXT port: a client that
    # does not authenticate, in plaintext or over verified TLS, gets nothing.
    answered = []
    for address in [*addresses, OLD_PLAINTEXT_LISTENER]:
        for protocol in ("PLAINTEXT", "SSL"):
            options: dict[str, object] = {
                "bootstrap_servers": address, "security_protocol": protocol, "request_timeout_ms": 5000}
            if protocol == "SSL":
                options["ssl_context"] = ssl.create_default_context(cafile=listener.ca_file)
            admin = AIOKafkaAdminClient(**options)
            try:
                await admin.start()
                answered.append(f"{protocol} {address}")
            except KafkaConnectionError:
                pass
            finally:
                await admin.close()
    assert answered == []


async def test_the_stack_grants_exactly_the_platform_acls(base_settings: StackSettings) -> None:
    # Tests' copies are on prefixed names (t_<hex>.…); everything else is the stack's own.
    stack_acls = {acl for acl in await broker_acls(base_settings) if not acl.name.startswith("t_")}
    assert stack_acls == expected_acls()


async def test_each_principal_may_write_exactly_its_topics(
    stack_settings: StackSettings, listener: SaslListener, granted: None
) -> None:
    for principal in PRINCIPALS:
        producer = make_producer(as_principal(stack_settings, listener, principal))
        await producer.start()  # an idempotent producer: allowed with Write on any topic
        written = set()
        try:
            for topic in PLATFORM_TOPICS:
                try:
                    await producer.send_and_wait(stack_settings.topic(topic), b"probe", key=b"probe")
                    written.add(topic)
                except TopicAuthorizationFailedError:
                    pass
        finally:
            await producer.stop()
        assert written == WRITES[principal], principal


async def readable(settings: StackSettings, consumer: AIOKafkaConsumer, topic: str) -> bool:
    """Whether the consumer may read the topic's records (it holds one): a topic it may not
    even describe is not in its metadata; one it may describe refuses the fetch."""
    name = settings.topic(topic)
    if name not in await consumer.topics():
        return False
    partitions = [TopicPartition(name, partition) for partition in range(TEST_PARTITIONS.get(topic, 1))]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    try:
        for _ in range(20):
            if await consumer.getmany(*partitions, timeout_ms=500):
                return True
    except TopicAuthorizationFailedError:
        return False
    raise AssertionError(f"{topic}: neither a record nor a refusal")


async def test_each_principal_may_read_exactly_its_topics(
    stack_settings: StackSettings, listener: SaslListener, granted: None
) -> None:
    for topic in PLATFORM_TOPICS:
        await send(stack_settings, topic, [b"probe"], keys=[b"probe"])  # as the super user
    for principal in PRINCIPALS:
        consumer = AIOKafkaConsumer(**kafka_client_options(as_principal(stack_settings, listener, principal)),
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            read = {topic for topic in PLATFORM_TOPICS if await readable(stack_settings, consumer, topic)}
        finally:
            await consumer.stop()
        assert read == READS[principal], principal


async def test_each_worker_consumes_in_its_own_group_only(
    stack_settings: StackSettings, listener: SaslListener, granted: None
) -> None:
    for group, (principal, topic) in GROUPS.items():
        await send(stack_settings, topic, [b"probe"], keys=[b"probe"])
        as_worker = as_principal(stack_settings, listener, principal)
        consumer = make_consumer(as_worker, group, topic)
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=20_000)
            assert [record.value for records in batch.values() for record in records] == [b"probe"], group
            await consumer.commit()
        finally:
            await stop_consumer(consumer)
        # The same principal in another worker's group, on a topic it may read.
        other = EVALUATOR_GROUP if group != EVALUATOR_GROUP else SENDER_GROUP
        intruder = make_consumer(as_worker, other, topic)
        try:
            with pytest.raises(GroupAuthorizationFailedError):
                await intruder.start()  # which waits for the group's assignment
        finally:
            await intruder.stop()


async def test_only_the_aggregator_reads_the_sender_groups_offsets(
    stack_settings: StackSettings, listener: SaslListener, granted: None
) -> None:
    group = stack_settings.topic(SENDER_GROUP)
    for principal, allowed in (("aggregator", True), ("evaluator", False)):
        admin = AIOKafkaAdminClient(**kafka_client_options(as_principal(stack_settings, listener, principal)))
        await admin.start()
        try:
            if allowed:
                assert await admin.list_consumer_group_offsets(group) == {}
            else:
                with pytest.raises(GroupAuthorizationFailedError):
                    await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()


async def test_a_wrong_password_or_an_unknown_user_is_refused(
    base_settings: StackSettings, listener: SaslListener, caplog: pytest.LogCaptureFixture
) -> None:
    for principal, password in (("rule-service", "not-its-password"), ("nobody", principal_password("rule-service"))):
        settings = as_principal(base_settings, listener, "rule-service", password).model_copy(
            update={"kafka_sasl_username": principal})
        producer = make_producer(settings)
        with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()
        assert "SaslAuthenticationFailed" in caplog.text
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in caplog.text
        caplog.clear()


async def test_the_listener_is_trusted_only_through_its_ca(
    base_settings: StackSettings, listener: SaslListener, caplog: pytest.LogCaptureFixture
) -> None:
    # The system's CAs did not sign the local stack's certificate: the client refuses the broker.
    unverified = as_principal(base_settings, listener, "producer").model_copy(update={"kafka_ssl_ca_file": ""})
    producer = make_producer(unverified)
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text

    verified = make_producer(as_principal(base_settings, listener, "producer"))
    await verified.start()  # the same principal through the CA: connected and authenticated
    await verified.stop()
