"""Logs, traces and the metrics server: the settings, and the tracing configuration that the
standard OTEL_* variables override."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

from pydantic import Field

from alerting.common.settings.base import AlertingSettings

log = logging.getLogger(__name__)


class TelemetrySettings(AlertingSettings):
    """Logs and traces (common.telemetry)."""

    otel_exporter: Literal["otlp", "zipkin", "console", "none"] = Field(default="none", description=(
        "Where spans go: `zipkin` to `OTEL_EXPORTER_ZIPKIN_ENDPOINT` (default localhost:9411)."
        " `OTEL_TRACES_EXPORTER` takes precedence."))
    otel_endpoint: str = Field(default="http://127.0.0.1:4317", description=(
        "The OTLP/gRPC endpoint, plaintext. `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` takes precedence."))
    otel_sample_ratio: float = Field(default=1.0, description=(
        "Fraction of new traces recorded (they start at the producer); later services follow the"
        " parent's decision. `OTEL_TRACES_SAMPLER_ARG` takes precedence."))
    log_level: str = Field(default="INFO", description="The Python logging level.")
    log_format: Literal["text", "json"] = Field(default="text", description=(
        "`json`: one JSON object per line (time, level, logger, message, service, trace_id, span_id)."))


class ServiceSettings(TelemetrySettings):
    """A long-running service (common.service.run_service): the address it binds, its metrics and health port."""

    listen_host: str = Field(default="127.0.0.1", description=(
        "The address every server of a service binds (metrics, gRPC, SMTP); containers use 0.0.0.0."))
    metrics_port: int = Field(default=0, description=(
        "Port of `/metrics`, `/livez`, `/readyz` and `/healthz`; 0: the service's port in"
        " `alerting/common/ports.py`."))


# What OTEL_TRACES_EXPORTER and OTEL_TRACES_SAMPLER may name here (the spec's names).
TRACES_EXPORTERS = ("otlp", "zipkin", "console")
SAMPLERS = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)


@dataclass(frozen=True)
class TracingSettings:
    """The tracing configuration a service runs with: the standard OTEL_* variables where
    set (and not empty), else the ALERTING_OTEL_* settings, else the defaults."""

    service_name: str
    exporters: tuple[str, ...]  # some of TRACES_EXPORTERS; empty: spans are not exported
    endpoint: str  # OTLP/gRPC
    # True: plaintext whatever the scheme (ALERTING_OTEL_ENDPOINT always was); None: the
    # exporter decides (https:// is TLS; OTEL_EXPORTER_OTLP_[TRACES_]INSECURE; http:// plaintext).
    endpoint_insecure: bool | None
    sampler: str  # one of SAMPLERS
    sample_ratio: float  # the ratio of the traceidratio samplers
    resource_attributes: dict[str, str] = field(default_factory=dict)  # service.name among them


def resource_attributes(value: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: `key=value` pairs separated by commas, values percent-encoded."""
    attributes: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, equals, raw = item.partition("=")
        if not equals or not key.strip():
            log.warning("OTEL_RESOURCE_ATTRIBUTES: ignoring %r (not key=value)", item)
            continue
        attributes[key.strip()] = unquote(raw.strip())
    return attributes


def service_name(default: str, environ: Mapping[str, str] | None = None) -> str:
    """The service's name in traces and logs: OTEL_SERVICE_NAME, else `service.name` in
    OTEL_RESOURCE_ATTRIBUTES, else `default` (the platform's name for the service)."""
    environ = os.environ if environ is None else environ
    return (
        _env(environ, "OTEL_SERVICE_NAME")
        or resource_attributes(_env(environ, "OTEL_RESOURCE_ATTRIBUTES") or "").get("service.name")
        or default
    )


def tracing_settings(
    default_service_name: str, settings: TelemetrySettings, environ: Mapping[str, str] | None = None
) -> TracingSettings:
    """Resolve the tracing configuration: each standard OTEL_* variable takes precedence
    over its ALERTING_OTEL_* counterpart, which stays the fallback. An invalid OTEL_* value
    is logged and ignored."""
    environ = os.environ if environ is None else environ
    name = service_name(default_service_name, environ)
    attributes = {**resource_attributes(_env(environ, "OTEL_RESOURCE_ATTRIBUTES") or ""), "service.name": name}

    exporters: tuple[str, ...] = () if settings.otel_exporter == "none" else (settings.otel_exporter,)
    named = _env(environ, "OTEL_TRACES_EXPORTER")
    if named is not None:
        wanted = [item.strip().lower() for item in named.split(",") if item.strip()]
        for unknown in sorted(set(wanted) - {*TRACES_EXPORTERS, "none"}):
            log.warning("OTEL_TRACES_EXPORTER: %r is not supported here (%s or none); ignored",
                        unknown, ", ".join(TRACES_EXPORTERS))
        exporters = () if "none" in wanted else tuple(dict.fromkeys(e for e in wanted if e in TRACES_EXPORTERS))

    endpoint = settings.otel_endpoint
    insecure: bool | None = True
    standard_endpoint = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or _env(
        environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if standard_endpoint is not None:
        endpoint, insecure = standard_endpoint, None

    sampler = "parentbased_traceidratio"
    named = _env(environ, "OTEL_TRACES_SAMPLER")
    if named is not None:
        if named.lower() in SAMPLERS:
            sampler = named.lower()
        else:
            log.warning("OTEL_TRACES_SAMPLER: %r is not supported here (one of %s); ignored",
                        named, ", ".join(SAMPLERS))
    ratio = settings.otel_sample_ratio
    argument = _env(environ, "OTEL_TRACES_SAMPLER_ARG")
    if argument is not None:
        try:
            ratio = float(argument)
            if not 0.0 <= ratio <= 1.0:
                raise ValueError("not between 0 and 1")
        except ValueError as error:
            ratio = settings.otel_sample_ratio
            log.warning("OTEL_TRACES_SAMPLER_ARG: %r is not a ratio (%s); ignored", argument, error)
    return TracingSettings(
        service_name=name, exporters=exporters, endpoint=endpoint, endpoint_insecure=insecure,
        sampler=sampler, sample_ratio=ratio, resource_attributes=attributes,
    )


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """A variable's value; None when unset or empty (the spec treats empty as unset)."""
    value = environ.get(name, "").strip()
    return value or None
