"""Redis, which holds the rule snapshot, and the key that signs it."""

from __future__ import annotations

from pydantic import Field, SecretStr

from alerting.common.settings.base import RetrySettings


class RedisSettings(RetrySettings):
    """Redis and how to log in to it (common.redis_client)."""

    redis_url: str = Field(default="rediss://127.0.0.1:6380/0", description=(
        "Redis, which holds the rule snapshot; `rediss://` is TLS. Credentials written in it win over"
        " `ALERTING_REDIS_USERNAME` and `ALERTING_REDIS_PASSWORD`."))
    redis_key_prefix: str = Field(default="", description=(
        "Put before every Redis key, for the same reason as the topic prefix."))
    redis_username: str = Field(default="", description="The Redis ACL user to log in as; empty: the default user.")
    redis_password: SecretStr | None = Field(default=None, description="That user's password; unset: no AUTH.")
    redis_ca_file: str = Field(default="", description=(
        "The CA (PEM) that a `rediss://` server is verified against; empty: the system's CAs."))

    def redis_key(self, name: str) -> str:
        return f"{self.redis_key_prefix}{name}"


class RuleSnapshotSettings(RedisSettings):
    """The rule snapshot in Redis (alerting.rules.snapshot)."""

    rule_snapshot_key: SecretStr | None = Field(default=None, description=(
        "The HMAC key that signs the Redis rule snapshot: the rule-updater signs what it writes, the"
        " evaluator checks every entry before it trusts one."))
