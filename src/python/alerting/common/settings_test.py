import pytest

from alerting.common.settings import Settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALERTING_KAFKA_BOOTSTRAP", "ALERTING_TOPIC_PREFIX", "ALERTING_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.database_url.endswith("@127.0.0.1:5432/alerting")
    assert settings.topic("alerts.new") == "alerts.new"


def test_environment_overrides_and_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("ALERTING_REDIS_KEY_PREFIX", "t1:")
    monkeypatch.setenv("ALERTING_BATCH_MAX_RECORDS", "7")
    settings = Settings()
    assert settings.topic("alerts.new") == "t1.alerts.new"
    assert settings.redis_key("rules:version") == "t1:rules:version"
    assert settings.batch_max_records == 7
