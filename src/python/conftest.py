"""Fixtures every test package shares: an isolated slice of the real local stack.

The stack itself is started by `deploy/local-stack up` (the README's test command runs
it first); a test that cannot reach it fails with a message that says so.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError

from alerting.common.db import owner_url
from alerting.testsupport import profiles, stack
from alerting.testsupport.stack import StackSettings

profiles.load()


def _require(host: str, port: int, what: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        pytest.fail(f"{what} is not reachable at {host}:{port} ({error}); run `deploy/local-stack up` first")


@pytest.fixture(scope="session")
def base_settings() -> StackSettings:
    try:
        # The stack's generated passwords and keys, through ALERTING_*_FILE (pants.toml).
        settings = StackSettings()
    except ValidationError as error:
        pytest.fail(f"the local stack's secrets are missing ({error}); run `deploy/local-stack up` first")
    kafka_host, kafka_port = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    _require(kafka_host, int(kafka_port), "Kafka")
    _require("127.0.0.1", int(settings.database_url.rsplit(":", 1)[1].split("/")[0]), "Postgres")
    _require("127.0.0.1", int(settings.redis_url.rsplit(":", 1)[1].split("/")[0]), "Redis")
    # Tests create, migrate, arrange and inspect databases as the owner, often with the URL
    # alone (services log in as their own roles whatever the URL says): it carries the
    # owner's login, ALERTING_DATABASE_PASSWORD's included.
    return settings.model_copy(update={"database_url": owner_url(settings)})


@pytest.fixture(scope="session")
def template_database(base_settings: StackSettings) -> Iterator[str]:
    """One migrated database per test process; each test gets a copy of it."""
    name = stack.unique_name("alerting_tpl")
    url = asyncio.run(stack.create_database(base_settings.database_url, name))
    stack.migrate_up(url)
    yield name
    asyncio.run(stack.drop_database(base_settings.database_url, name))


@pytest.fixture
async def stack_settings(base_settings: StackSettings, template_database: str) -> AsyncIterator[StackSettings]:
    """Settings naming this test's own topics, database and Redis keys."""
    tag = stack.unique_name("t")
    database_url = await stack.create_database(base_settings.database_url, tag, template=template_database)
    settings = base_settings.model_copy(
        update={
            "topic_prefix": f"{tag}.",
            "redis_key_prefix": f"{tag}:",
            "database_url": database_url,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.5,
        }
    )
    await stack.create_topics(settings)
    yield settings
    await stack.delete_topics(settings)
    await stack.delete_redis_keys(settings)
    await stack.drop_database(base_settings.database_url, tag)
