"""The platform's Kafka clients: where the broker is and how to log in (the same for every
client), producers, group consumers, and a worker's pair of them, started while the broker
cannot be reached yet."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2

from alerting.common.kafka.leave import stop_consumer
from alerting.common.retry import retry_until_done
from alerting.common.settings import KafkaSettings, RetrySettings, WorkerSettings, secret_value

# What one fetch of a worker's consumer may bring of a partition.
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024


def kafka_client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Where the broker is and how to reach it: the bootstrap servers and the security
    options, for every aiokafka producer, consumer and admin client. SSL and SASL_SSL verify
    the broker's certificate and name; SASL_* authenticate with SCRAM."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = dict(bootstrap_servers=settings.kafka_bootstrap, security_protocol=protocol)
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_ca_file or None)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = secret_value(settings.kafka_sasl_password)
        if not settings.kafka_sasl_username or not password:
            # Refused here, at start-up, rather than by the broker after every retry.
            raise ValueError(f"ALERTING_KAFKA_SECURITY_PROTOCOL={protocol} needs ALERTING_KAFKA_SASL_USERNAME "
                             "and ALERTING_KAFKA_SASL_PASSWORD (or ALERTING_KAFKA_SASL_PASSWORD_FILE)")
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username, sasl_plain_password=password)
    return options


@functools.lru_cache(maxsize=65536)
def key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def partition_of_key(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (the Java client's murmur2 of the key, so a key goes
    where any Kafka client would put it) with each key's hash remembered: keys are client ids
    that come again and again, and the pure-Python hash was the evaluator's costliest
    function. A message without a key goes to any available partition."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[key_hash(key) % len(all_partitions)]


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer that waits for every in-sync replica."""
    options: dict[str, Any] = dict(
        **kafka_client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        partitioner=partition_of_key,
        max_batch_size=512 * 1024,
        request_timeout_ms=30000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: WorkerSettings, group_id: str, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A group consumer that never commits on its own: the loop commits after durable progress.

    Consumer groups are broker-wide, so the group id carries the topic prefix too. With an
    instance id the consumer is a static member: killed and restarted within the session
    timeout, it resumes its own partitions without a rebalance of the group."""
    options: dict[str, Any] = dict(
        **kafka_client_options(settings),
        group_id=settings.topic(group_id),
        group_instance_id=f"{group_id}-{settings.instance_id}" if settings.instance_id else None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        # A batch that waits out a long outage must not get the consumer thrown out of the group.
        max_poll_interval_ms=30 * 60 * 1000,
    )
    options.update(overrides)
    return AIOKafkaConsumer(*[settings.topic(topic) for topic in topics], **options)


async def start_clients(settings: RetrySettings, *clients: AIOKafkaProducer | AIOKafkaConsumer,
                        stop: asyncio.Event | None = None) -> None:
    """Start each Kafka client, retrying with backoff while the broker cannot be reached,
    so a service started before Kafka (or during an outage) waits instead of dying."""
    for client in clients:
        await retry_until_done(client.start, settings, what=f"starting a Kafka {type(client).__name__}", stop=stop)


@asynccontextmanager
async def worker_clients(
    settings: WorkerSettings, group_id: str, topic: str, stop: asyncio.Event
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer]]:
    """A worker's Kafka clients, started (waiting for the broker): a group consumer of
    `topic`, and a producer for its outputs and dead letters. On exit both stop, the
    consumer leaving its group."""
    consumer = make_consumer(settings, group_id, topic)
    producer = make_producer(settings)
    try:
        await start_clients(settings, producer, consumer, stop=stop)
        yield consumer, producer
    finally:
        await stop_consumer(consumer)
        await producer.stop()
