"""The Redis client on the local stack's real Redis: TLS only, verified against the CA that
signed the server's certificate; no default user; each service an ACL user of its own, the
evaluator read-only on the snapshot, the rule-updater writing it and nothing else."""

from __future__ import annotations

import pytest
import redis.asyncio as redis
from pydantic import SecretStr
from redis.exceptions import NoPermissionError

from alerting.common.redis_client import redis_client
from alerting.rules import snapshot
from alerting.testsupport.stack import StackSettings, local_secret, unique_name


async def test_redis_refuses_a_client_without_the_password(base_settings: StackSettings) -> None:
    anonymous_settings = base_settings.model_copy(update={"redis_username": "", "redis_password": None})
    async with redis_client(anonymous_settings) as anonymous:
        # NOAUTH, to the HELLO a RESP3 client opens with.
        with pytest.raises(redis.AuthenticationError, match="must be called with the client already authenticated"):
            await anonymous.ping()
    # The default user is off: no password makes it anyone's.
    for password in ("", "alerting"):
        as_default = anonymous_settings.model_copy(update={"redis_password": SecretStr(password)})
        async with redis_client(as_default) as default:
            with pytest.raises(redis.AuthenticationError):
                await default.ping()
    wrong = base_settings.model_copy(update={"redis_password": SecretStr("not-the-password")})
    async with redis_client(wrong) as client:
        with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):  # WRONGPASS
            await client.ping()
    async with redis_client(base_settings) as client:
        assert await client.ping() is True


async def test_an_acl_user_authenticates_with_its_name(base_settings: StackSettings) -> None:
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


async def test_a_password_in_the_url_wins_over_the_setting(base_settings: StackSettings) -> None:
    password = local_secret("redis/admin.password")
    url = base_settings.redis_url.replace("rediss://", f"rediss://admin:{password}@", 1)
    settings = base_settings.model_copy(update={"redis_url": url, "redis_password": SecretStr("not-the-password")})
    async with redis_client(settings) as client:
        assert await client.ping() is True


async def test_only_tls_is_served(base_settings: StackSettings) -> None:
    assert await _config(base_settings, "port") == "0"  # the plaintext port is closed
    assert await _config(base_settings, "tls-port") != "0"


def as_user(settings: StackSettings, user: str) -> StackSettings:
    return settings.model_copy(update={"redis_username": user, "redis_password": SecretStr(
        local_secret(f"redis/{user}.password"))})


async def test_the_evaluator_reads_the_snapshot_and_writes_nothing_of_it(base_settings: StackSettings) -> None:
    """On the platform's own keys (no prefix: the ACLs name them); every write is refused, so
    nothing is changed."""
    snapshot_key, version_key, meta_key, grants_key = snapshot.keys(base_settings)
    async with redis_client(as_user(base_settings, "evaluator")) as evaluator:
        await evaluator.get(version_key)
        await evaluator.hgetall(meta_key)
        await evaluator.hscan(snapshot_key, 0)
        await evaluator.hgetall(grants_key)
        for write in (evaluator.set(version_key, "1000000"), evaluator.hset(meta_key, "count", "0"),
                      evaluator.hset(snapshot_key, "forged", b"rule"), evaluator.hset(grants_key, "forged", b"grant"),
                      evaluator.delete(snapshot_key),
                      evaluator.eval("return redis.call('SET', KEYS[1], '1')", 1, version_key),
                      evaluator.get("elsewhere"), evaluator.config_get("dir")):
            with pytest.raises(NoPermissionError):
                await write


async def test_the_rule_updater_writes_the_snapshot_keys_only(base_settings: StackSettings) -> None:
    probe = f"rules:acl-probe:{unique_name('t')}"  # among the keys it may write, removed afterwards
    async with redis_client(as_user(base_settings, "rule-updater")) as updater:
        try:
            assert await updater.set(probe, "v") is True
        finally:
            await updater.delete(probe)
        for refused in (updater.set(f"elsewhere:{probe}", "v"), updater.get("elsewhere"), updater.config_get("dir"),
                        updater.flushall(), updater.acl_list()):
            with pytest.raises(NoPermissionError):
                await refused


async def _config(settings: StackSettings, name: str) -> str:
    """A setting of the running Redis: what it serves, wherever the test runs."""
    async with redis_client(settings) as client:
        return str((await client.config_get(name))[name])


async def test_tls_is_verified_against_the_ca(base_settings: StackSettings) -> None:
    tls_url = f"rediss://127.0.0.1:{await _config(base_settings, 'tls-port')}/0"
    ca_file = await _config(base_settings, "tls-ca-cert-file")
    verified = base_settings.model_copy(update={"redis_url": tls_url, "redis_ca_file": ca_file})
    async with redis_client(verified) as client:
        assert await client.ping() is True
    # The system's CAs did not sign the local stack's certificate.
    async with redis_client(base_settings.model_copy(update={"redis_url": tls_url, "redis_ca_file": ""})) as client:
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.ping()


def test_a_ca_file_without_tls_is_refused(base_settings: StackSettings) -> None:
    plain = base_settings.model_copy(update={"redis_url": "redis://127.0.0.1:6380/0", "redis_ca_file": "/etc/ca.pem"})
    with pytest.raises(ValueError, match="ALERTING_REDIS_URL is not rediss://"):
        redis_client(plain)
