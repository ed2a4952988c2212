from pathlib import Path

import pytest
from pydantic import ValidationError

from alerting.common.settings import Settings, TracingSettings, secret_value, service_name, tracing_settings


def test_defaults_point_at_the_local_stack_with_no_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALERTING_KAFKA_BOOTSTRAP", "ALERTING_TOPIC_PREFIX", "ALERTING_DATABASE_URL", "ALERTING_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9094"
    assert settings.database_url == "postgresql://alerting@127.0.0.1:5432/alerting"
    assert settings.redis_url == "rediss://127.0.0.1:6380/0"
    assert settings.topic("alerts.new") == "alerts.new"


def test_environment_overrides_and_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("ALERTING_REDIS_KEY_PREFIX", "t1:")
    monkeypatch.setenv("ALERTING_BATCH_MAX_RECORDS", "7")
    settings = Settings()
    assert settings.topic("alerts.new") == "t1.alerts.new"
    assert settings.redis_key("rules:version") == "t1:rules:version"
    assert settings.batch_max_records == 7


def test_log_format_is_text_unless_json_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTING_LOG_FORMAT", raising=False)
    assert Settings().log_format == "text"
    monkeypatch.setenv("ALERTING_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("ALERTING_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        Settings()


def test_without_otel_variables_the_alerting_otel_settings_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALERTING_OTEL_EXPORTER", "ALERTING_OTEL_ENDPOINT", "ALERTING_OTEL_SAMPLE_RATIO"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(otel_exporter="otlp", otel_endpoint="http://jaeger:4317", otel_sample_ratio=0.5)
    assert tracing_settings("sender", settings, {}) == TracingSettings(
        service_name="sender", exporters=("otlp",), endpoint="http://jaeger:4317", endpoint_insecure=True,
        sampler="parentbased_traceidratio", sample_ratio=0.5, resource_attributes={"service.name": "sender"},
    )
    defaults = tracing_settings("sender", Settings(), {})
    assert (defaults.exporters, defaults.endpoint, defaults.sample_ratio) == ((), "http://127.0.0.1:4317", 1.0)


def test_otel_variables_take_precedence_over_the_alerting_otel_settings() -> None:
    settings = Settings(otel_exporter="otlp", otel_endpoint="http://jaeger:4317", otel_sample_ratio=0.5)
    environ = {
        "OTEL_SERVICE_NAME": "sender-eu",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, team=on%2Ccall ,service.name=not-this",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces-collector:4317",
        "OTEL_TRACES_SAMPLER": "ParentBased_Always_On",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
        "OTEL_TRACES_EXPORTER": "console,otlp",
    }
    assert tracing_settings("sender", settings, environ) == TracingSettings(
        service_name="sender-eu", exporters=("console", "otlp"), endpoint="https://traces-collector:4317",
        endpoint_insecure=None, sampler="parentbased_always_on", sample_ratio=0.1,
        resource_attributes={"deployment.environment": "prod", "team": "on,call", "service.name": "sender-eu"},
    )
    # The generic endpoint when the traces one is not set; service.name from the resource attributes.
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_RESOURCE_ATTRIBUTES": "service.name=a",
               "OTEL_TRACES_EXPORTER": "none"}
    resolved = tracing_settings("sender", settings, environ)
    assert (resolved.service_name, resolved.endpoint, resolved.endpoint_insecure, resolved.exporters) == (
        "a", "http://collector:4317", None, ())
    assert service_name("sender", environ) == "a"
    assert service_name("sender", {"OTEL_SERVICE_NAME": "b", **environ}) == "b"


def test_empty_or_invalid_otel_variables_are_ignored() -> None:
    settings = Settings(otel_exporter="console", otel_endpoint="http://jaeger:4317", otel_sample_ratio=0.5)
    environ = {
        "OTEL_SERVICE_NAME": "",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": " ",
        "OTEL_TRACES_SAMPLER": "jaeger_remote",
        "OTEL_TRACES_SAMPLER_ARG": "1.5",
        "OTEL_RESOURCE_ATTRIBUTES": "novalue,=x,k=v",
    }
    assert tracing_settings("evaluator", settings, environ) == TracingSettings(
        service_name="evaluator", exporters=("console",), endpoint="http://jaeger:4317", endpoint_insecure=True,
        sampler="parentbased_traceidratio", sample_ratio=0.5,
        resource_attributes={"k": "v", "service.name": "evaluator"},
    )
    assert tracing_settings("evaluator", settings, {"OTEL_TRACES_SAMPLER_ARG": "often"}).sample_ratio == 0.5
    # An exporter this build does not have is dropped; the ones it has stay.
    assert tracing_settings("evaluator", settings, {"OTEL_TRACES_EXPORTER": "jaeger,otlp"}).exporters == ("otlp",)
    assert tracing_settings("evaluator", settings, {"OTEL_TRACES_EXPORTER": "jaeger"}).exporters == ()
    assert tracing_settings("evaluator", settings, {"OTEL_TRACES_EXPORTER": "zipkin"}).exporters == ("zipkin",)


def test_a_secret_setting_reads_from_its_file_and_never_shows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text("ak_public.secretpart\n")
    monkeypatch.setenv("ALERTING_API_KEY_FILE", str(key_file))
    settings = Settings()
    assert secret_value(settings.api_key) == "ak_public.secretpart"
    assert "secretpart" not in repr(settings) and "secretpart" not in str(settings.model_dump())
    monkeypatch.setenv("ALERTING_API_KEY", "ak_direct.value")
    assert secret_value(Settings().api_key) == "ak_direct.value"


def test_an_unreadable_secret_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALERTING_API_KEY", raising=False)
    monkeypatch.setenv("ALERTING_API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="ALERTING_API_KEY_FILE: cannot read"):
        Settings()


DATABASE_LOGIN_VARIABLES = [
    f"ALERTING_{name}{suffix}"
    for name in ("DATABASE_PASSWORD", "MIGRATION_DATABASE_USER", "MIGRATION_DATABASE_PASSWORD",
                 "CONTROL_PLANE_DATABASE_USER", "CONTROL_PLANE_DATABASE_PASSWORD",
                 "RULE_READER_DATABASE_USER", "RULE_READER_DATABASE_PASSWORD", "DATA_PLANE_DATABASE_USER",
                 "DATA_PLANE_DATABASE_PASSWORD", "NOTIFICATION_ADMIN_DATABASE_USER",
                 "NOTIFICATION_ADMIN_DATABASE_PASSWORD")
    for suffix in ("", "_FILE")
]


def test_database_logins_default_to_the_local_stack_roles_without_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DATABASE_LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert [(user, password) for user, password in (
        ("alerting", settings.database_password),
        (settings.migration_database_user, settings.migration_database_password),
        (settings.control_plane_database_user, settings.control_plane_database_password),
        (settings.rule_reader_database_user, settings.rule_reader_database_password),
        (settings.data_plane_database_user, settings.data_plane_database_password),
        (settings.notification_admin_database_user, settings.notification_admin_database_password),
    )] == [("alerting", None), ("alerting_migrator", None), ("alerting_control_plane", None),
           ("alerting_rule_reader", None), ("alerting_data_plane", None), ("alerting_notification_admin", None)]


def test_database_passwords_read_from_their_files_and_never_show(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in DATABASE_LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "owner").write_text("owner-secret\n")
    (tmp_path / "data_plane").write_text("data-plane-secret\n")
    monkeypatch.setenv("ALERTING_DATABASE_PASSWORD_FILE", str(tmp_path / "owner"))
    monkeypatch.setenv("ALERTING_DATA_PLANE_DATABASE_PASSWORD_FILE", str(tmp_path / "data_plane"))
    monkeypatch.setenv("ALERTING_CONTROL_PLANE_DATABASE_PASSWORD", "control-plane-secret")
    settings = Settings()
    assert secret_value(settings.database_password) == "owner-secret"
    assert secret_value(settings.data_plane_database_password) == "data-plane-secret"
    assert secret_value(settings.control_plane_database_password) == "control-plane-secret"
    shown = repr(settings) + str(settings.model_dump())
    assert [secret for secret in ("owner-secret", "data-plane-secret", "control-plane-secret") if secret in shown] == []


def test_kafka_and_redis_security_defaults_suit_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE",
                 "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_CA_FILE",
                 "RULE_SNAPSHOT_KEY", "RULE_SNAPSHOT_KEY_FILE"):
        monkeypatch.delenv(f"ALERTING_{name}", raising=False)
    settings = Settings()
    # Authenticated and encrypted unless told otherwise, with no password of its own.
    assert (settings.kafka_security_protocol, settings.kafka_sasl_username, settings.kafka_sasl_password) == (
        "SASL_SSL", "", None)
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert (settings.redis_username, settings.redis_password, settings.redis_ca_file) == ("", None, "")
    assert settings.rule_snapshot_key is None


def test_kafka_and_redis_passwords_read_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ALERTING_KAFKA_SASL_PASSWORD", "ALERTING_REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "kafka").write_text("scram-secret\n")
    (tmp_path / "redis").write_text("redis-secret\n")
    monkeypatch.setenv("ALERTING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ALERTING_KAFKA_SASL_USERNAME", "evaluator")
    monkeypatch.setenv("ALERTING_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "kafka"))
    monkeypatch.setenv("ALERTING_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    settings = Settings()
    assert (secret_value(settings.kafka_sasl_password), secret_value(settings.redis_password)) == (
        "scram-secret", "redis-secret")
    assert "scram-secret" not in repr(settings) and "redis-secret" not in repr(settings)
    # An empty password means none: no AUTH (a Redis without a password).
    monkeypatch.delenv("ALERTING_REDIS_PASSWORD_FILE")
    monkeypatch.setenv("ALERTING_REDIS_PASSWORD", "")
    assert secret_value(Settings().redis_password) == ""


def test_an_unknown_kafka_security_protocol_or_mechanism_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ALERTING_KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        Settings()
    monkeypatch.setenv("ALERTING_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ALERTING_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        Settings()
