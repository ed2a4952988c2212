"""Logs' and traces' settings, and the tracing configuration the standard OTEL_* variables override."""

import pytest
from pydantic import ValidationError

from alerting.common.settings import TelemetrySettings, TracingSettings, service_name, tracing_settings


def test_log_format_is_text_unless_json_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTING_LOG_FORMAT", raising=False)
    assert TelemetrySettings().log_format == "text"
    monkeypatch.setenv("ALERTING_LOG_FORMAT", "json")
    assert TelemetrySettings().log_format == "json"
    monkeypatch.setenv("ALERTING_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        TelemetrySettings()


def test_without_otel_variables_the_alerting_otel_settings_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALERTING_OTEL_EXPORTER", "ALERTING_OTEL_ENDPOINT", "ALERTING_OTEL_SAMPLE_RATIO"):
        monkeypatch.delenv(name, raising=False)
    settings = TelemetrySettings(otel_exporter="otlp", otel_endpoint="http://jaeger:4317", otel_sample_ratio=0.5)
    assert tracing_settings("sender", settings, {}) == TracingSettings(
        service_name="sender", exporters=("otlp",), endpoint="http://jaeger:4317", endpoint_insecure=True,
        sampler="parentbased_traceidratio", sample_ratio=0.5, resource_attributes={"service.name": "sender"},
    )
    defaults = tracing_settings("sender", TelemetrySettings(), {})
    assert (defaults.exporters, defaults.endpoint, defaults.sample_ratio) == ((), "http://127.0.0.1:4317", 1.0)


def test_otel_variables_take_precedence_over_the_alerting_otel_settings() -> None:
    settings = TelemetrySettings(otel_exporter="otlp", otel_endpoint="http://jaeger:4317", otel_sample_ratio=0.5)
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
    settings = TelemetrySettings(otel_exporter="console", otel_endpoint="http://jaeger:4317", otel_sample_ratio=0.5)
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
