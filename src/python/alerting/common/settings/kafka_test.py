"""Kafka's settings: the local stack's by default, prefixes, and security."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from alerting.common.settings import KafkaSettings, WorkerSettings, secret_value


def test_defaults_point_at_the_local_stack_with_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP", "TOPIC_PREFIX", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME",
                 "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE"):
        monkeypatch.delenv(f"ALERTING_{name}", raising=False)
    settings = KafkaSettings()
    assert settings.kafka_bootstrap == "127.0.0.1:9094"
    assert settings.topic("alerts.new") == "alerts.new"
    # Authenticated and encrypted unless told otherwise, with no password of its own.
    assert (settings.kafka_security_protocol, settings.kafka_sasl_username, settings.kafka_sasl_password) == (
        "SASL_SSL", "", None)
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"


def test_environment_overrides_and_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("ALERTING_BATCH_MAX_RECORDS", "7")
    settings = WorkerSettings()
    assert settings.topic("alerts.new") == "t1.alerts.new"
    assert settings.batch_max_records == 7


def test_the_kafka_password_reads_from_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_KAFKA_SASL_PASSWORD", raising=False)
    (tmp_path / "kafka").write_text("scram-secret\n")
    monkeypatch.setenv("ALERTING_KAFKA_SASL_USERNAME", "evaluator")
    monkeypatch.setenv("ALERTING_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "kafka"))
    settings = KafkaSettings()
    assert secret_value(settings.kafka_sasl_password) == "scram-secret"
    assert "scram-secret" not in repr(settings)


def test_an_unknown_kafka_security_protocol_or_mechanism_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ALERTING_KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        KafkaSettings()
    monkeypatch.setenv("ALERTING_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ALERTING_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        KafkaSettings()
