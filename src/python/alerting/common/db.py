"""The asyncpg connection pool, opened with retries so a service can start before Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from alerting.common.retry import retry_until_done
from alerting.common.settings import Settings


async def create_pool(settings: Settings, stop: asyncio.Event | None = None, **overrides: Any) -> asyncpg.Pool:
    options: dict[str, Any] = dict(min_size=1, max_size=settings.database_pool_size, command_timeout=60)
    options.update(overrides)

    async def connect() -> asyncpg.Pool:
        return await asyncpg.create_pool(settings.database_url, **options)

    return await retry_until_done(connect, settings, what="connecting to Postgres", stop=stop)
