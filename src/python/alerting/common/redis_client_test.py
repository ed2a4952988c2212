"""The Redis client on the local stack's real Redis: a password is required, and TLS is
verified against the CA that signed the server's certificate."""

from __future__ import annotations

import pytest
import redis.asyncio as redis
from pydantic import SecretStr
from redis.exceptions import NoPermissionError

from alerting.common.redis_client import redis_client
from alerting.common.settings import Settings
from alerting.testsupport.stack import unique_name


async def test_redis_refuses_a_client_without_the_password(base_settings: Settings) -> None:
    async with redis_client(base_settings.model_copy(update={"redis_password": None})) as anonymous:
        # NOAUTH, to the HELLO a RESP3 client opens with.
        with pytest.raises(redis.AuthenticationError, match="must be called with the client already authenticated"):
            await anonymous.ping()
    wrong = base_settings.model_copy(update={"redis_password": SecretStr("not-the-password")})
    async with redis_client(wrong) as client:
        with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):  # WRONGPASS
            await client.ping()
    async with redis_client(base_settings) as client:
        assert await client.ping() is True


async def test_an_acl_user_authenticates_with_its_name(base_settings: Settings) -> None:
    user = unique_name("t")  # a user of its own, limited to its keys, removed afterwards
    async with redis_client(base_settings) as admin:
        await admin.acl_setuser(user, enabled=True, passwords=["+user-secret"], keys=[f"{user}:*"],
                                commands=["+set", "+acl|whoami"])
        try:
            as_user = base_settings.model_copy(
                update={"redis_username": user, "redis_password": SecretStr("user-secret")})
            async with redis_client(as_user) as client:
                assert await client.set(f"{user}:k", "v") is True
                with pytest.raises(NoPermissionError):
                    await client.set("elsewhere", "v")
                assert await client.acl_whoami() == user
        finally:
            await admin.acl_deluser(user)
            await admin.delete(f"{user}:k")


async def test_a_password_in_the_url_wins_over_the_setting(base_settings: Settings) -> None:
    password = await _config(base_settings, "requirepass")
    url = base_settings.redis_url.replace("redis://", f"redis://:{password}@", 1)
    settings = base_settings.model_copy(update={"redis_url": url, "redis_password": SecretStr("not-the-password")})
    async with redis_client(settings) as client:
        assert await client.ping() is True


async def _config(settings: Settings, name: str) -> str:
    """A setting of the running Redis: what it serves, wherever the test runs."""
    async with redis_client(settings) as client:
        return str((await client.config_get(name))[name])


async def test_tls_is_verified_against_the_ca(base_settings: Settings) -> None:
    tls_url = f"rediss://127.0.0.1:{await _config(base_settings, 'tls-port')}/0"
    ca_file = await _config(base_settings, "tls-ca-cert-file")
    verified = base_settings.model_copy(update={"redis_url": tls_url, "redis_ca_file": ca_file})
    async with redis_client(verified) as client:
        assert await client.ping() is True
    # The system's CAs did not sign the local stack's certificate.
    async with redis_client(base_settings.model_copy(update={"redis_url": tls_url})) as client:
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.ping()


def test_a_ca_file_without_tls_is_refused(base_settings: Settings) -> None:
    plain = base_settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0", "redis_ca_file": "/etc/ca.pem"})
    with pytest.raises(ValueError, match="ALERTING_REDIS_URL is not rediss://"):
        redis_client(plain)
