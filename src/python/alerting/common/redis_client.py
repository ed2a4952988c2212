"""The one way the platform connects to Redis: redis_url, authenticated with the
redis_username/redis_password settings, over TLS when the URL is rediss://."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis

from alerting.common.settings import RedisSettings, secret_value


def redis_client(settings: RedisSettings) -> redis.Redis:
    """A client of settings.redis_url (connections are made on first use). A password or
    user written into the URL wins over the settings, as redis-py gives the URL precedence."""
    options: dict[str, Any] = {}
    password = secret_value(settings.redis_password)
    if password:
        options["password"] = password
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_ca_file:
        # A CA for a plaintext URL would leave the operator believing the link is encrypted.
        if urlsplit(settings.redis_url).scheme != "rediss":
            raise ValueError("ALERTING_REDIS_CA_FILE is set but ALERTING_REDIS_URL is not rediss:// (TLS)")
        options["ssl_ca_certs"] = settings.redis_ca_file
    return redis.from_url(settings.redis_url, **options)
