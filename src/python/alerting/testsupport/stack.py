"""Isolated slices of the real local stack for tests: prefixed topics, a fresh migrated
database and prefixed Redis keys, all on the one broker, server and cache that
`deploy/local-stack up` runs. Nothing here imitates Kafka, Postgres or Redis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from alerting.common import topics
from alerting.common.kafka import kafka_client_options
from alerting.common.redis_client import redis_client
from alerting.common.settings import (
    AggregatorSettings,
    DemoSettings,
    EvaluatorSettings,
    KafkaSettings,
    MigrateSettings,
    ProducerSettings,
    RedisSettings,
    RuleServiceSettings,
    RuleUpdaterSettings,
    SenderSettings,
)


class StackSettings(RuleServiceSettings, RuleUpdaterSettings, EvaluatorSettings, AggregatorSettings, SenderSettings,
                    MigrateSettings, ProducerSettings, DemoSettings):
    """Every process's settings at once: tests and benchmarks act as any process of the
    platform, and as its tools, on one slice of the local stack."""


# Partitions per topic in tests: enough to exercise keying and rebalances, cheap to create.
TEST_PARTITIONS = {
    topics.ALERTS_NEW: 3,
    topics.RULE_CHANGED: 1,
    topics.ALERTS_MATCHED: 3,
    topics.NOTIFICATIONS_READY: 3,
}


def local_state() -> Path:
    """The local stack's folder (.local): its data under stack/, the passwords and keys it
    generated under secrets/, its CA under tls/. Pants gives tests its place as
    ALERTING_LOCAL_STATE (pants.toml); run elsewhere, the repository's."""
    configured = os.environ.get("ALERTING_LOCAL_STATE")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / ".local"


def local_secret(name: str) -> str:
    """A secret `deploy/local-stack up` generated, e.g. `kafka/evaluator.password`."""
    return (local_state() / "secrets" / name).read_text(encoding="utf-8").strip()


def unique_name(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:10]}"


async def create_topics(settings: KafkaSettings, partitions: dict[str, int] = TEST_PARTITIONS) -> None:
    """Create every platform topic, with its configs, and its dead-letter topic under settings.topic_prefix."""
    wanted = [
        NewTopic(settings.topic(name), count, 1, topic_configs=topics.TOPIC_CONFIGS.get(name))
        for name, count in partitions.items()
    ]
    wanted += [NewTopic(settings.topic(topics.dead_letter(name)), 1, 1) for name in partitions]
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        try:
            await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            pass
        # Metadata reaches the broker's cache a moment after creation.
        for _ in range(100):
            known = set(await admin.list_topics())
            if all(topic.name in known for topic in wanted):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("topics were not created in time")
    finally:
        await admin.close()


async def delete_topics(settings: KafkaSettings) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def migrations_dir() -> str:
    """The migrations folder: in a Pants sandbox and in the repo it is ./migrations."""
    candidates = [os.environ.get("ALERTING_MIGRATIONS_DIR", ""), "migrations"]
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(here, "..", "..", "..", "migrations"))
    for candidate in candidates:
        if candidate and os.path.isdir(candidate):
            return os.path.abspath(candidate)
    raise RuntimeError("migrations/ not found; run tests from the repo root or through pants")


def migrate_up(database_url: str) -> None:
    """Apply every migration with the project's one migration runner, as the migration role
    acting as the owner (the URL's user), which also sets the service roles' passwords from
    the ALERTING_* settings (the stack's own, in tests)."""
    env = dict(os.environ, ALERTING_DATABASE_URL=database_url, ALERTING_MIGRATIONS_DIR=migrations_dir())
    subprocess.run([sys.executable, "-m", "alerting.migrate.main", "up"], env=env, check=True, capture_output=True)


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """A new database owned by admin_url's user (the owner role, which may create databases);
    its URL, with the same login."""
    connection = await asyncpg.connect(admin_url)
    try:
        template_clause = f" TEMPLATE {template}" if template else ""
        await connection.execute(f"CREATE DATABASE {name}{template_clause}")
    finally:
        await connection.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


async def delete_redis_keys(settings: RedisSettings) -> None:
    client = redis_client(settings)
    try:
        keys = [key async for key in client.scan_iter(match=f"{settings.redis_key_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
