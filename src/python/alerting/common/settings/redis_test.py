"""Redis' settings: the local stack's by default, the key prefix, and its logins."""

from pathlib import Path

import pytest

from alerting.common.settings import RedisSettings, RuleSnapshotSettings, secret_value


def test_defaults_point_at_the_local_stack_with_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "REDIS_KEY_PREFIX", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE",
                 "REDIS_CA_FILE", "RULE_SNAPSHOT_KEY", "RULE_SNAPSHOT_KEY_FILE"):
        monkeypatch.delenv(f"ALERTING_{name}", raising=False)
    settings = RuleSnapshotSettings()
    assert settings.redis_url == "rediss://127.0.0.1:6380/0"
    assert (settings.redis_username, settings.redis_password, settings.redis_ca_file) == ("", None, "")
    assert settings.rule_snapshot_key is None
    assert settings.redis_key("rules:version") == "rules:version"


def test_the_key_prefix_and_the_password_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("ALERTING_REDIS_KEY_PREFIX", "t1:")
    (tmp_path / "redis").write_text("redis-secret\n")
    monkeypatch.setenv("ALERTING_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    settings = RedisSettings()
    assert settings.redis_key("rules:version") == "t1:rules:version"
    assert secret_value(settings.redis_password) == "redis-secret"
    assert "redis-secret" not in repr(settings)
    # An empty password means none: no AUTH (a Redis without a password).
    monkeypatch.delenv("ALERTING_REDIS_PASSWORD_FILE")
    monkeypatch.setenv("ALERTING_REDIS_PASSWORD", "")
    assert secret_value(RedisSettings().redis_password) == ""
