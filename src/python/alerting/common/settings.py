"""Typed settings read from ALERTING_* environment variables, defaulting to the local stack,
and the tracing configuration that the standard OTEL_* variables override."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTING_", extra="ignore")

    # The local stack's defaults: its SASL_SSL listener, its Postgres and its Redis over TLS.
    # No credential has a default (docs/security.md): each is given, best as a file
    # (ALERTING_<NAME>_FILE); deploy/local-stack generates them into .local/secrets/.
    kafka_bootstrap: str = "127.0.0.1:9094"
    # Prepended to every topic name and consumer group, so that tests can share one broker.
    topic_prefix: str = ""
    database_url: str = "postgresql://alerting@127.0.0.1:5432/alerting"
    database_pool_size: int = 10
    # Who logs in to database_url's database (migrations/MIGRATION_STRATEGY.md, "Roles").
    # database_url's user is the owner role: it owns the schema; tools and tests connect as
    # it. database_password, when set, is its password instead of one written in the URL.
    # Migrations run as the migration role, which alone may create roles and set their
    # passwords, and acts as the owner for everything else (db.migration_url). Each service
    # logs in as its own role, with the user and password below in place of the URL's,
    # granted only what it needs; `migrate up` sets these roles' passwords from the same
    # settings (not the ones left unset).
    database_password: SecretStr | None = None
    migration_database_user: str = "alerting_migrator"  # `migrate`
    migration_database_password: SecretStr | None = None
    control_plane_database_user: str = "alerting_control_plane"  # rule-service
    control_plane_database_password: SecretStr | None = None
    rule_reader_database_user: str = "alerting_rule_reader"  # rule-updater, evaluator: the snapshot rebuild
    rule_reader_database_password: SecretStr | None = None
    data_plane_database_user: str = "alerting_data_plane"  # aggregator, sender
    data_plane_database_password: SecretStr | None = None
    notification_admin_database_user: str = "alerting_notification_admin"  # rule-service: NotificationService
    notification_admin_database_password: SecretStr | None = None
    redis_url: str = "rediss://127.0.0.1:6380/0"
    # Prepended to every Redis key, for the same reason as topic_prefix.
    redis_key_prefix: str = ""
    # Kafka security, applied to every client (common.kafka.kafka_client_options). SASL_*
    # authenticate as kafka_sasl_username with SCRAM (a client refuses to start without
    # them); SSL/SASL_SSL verify the broker against kafka_ssl_ca_file (empty: the system's
    # CAs). PLAINTEXT is for a broker of your own: the local stack has no such listener.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "SASL_SSL"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: str = ""
    # The rule-service's dead-letter replay writes to the input topics as a principal of its
    # own, so that the rule-service's principal may write rule.changed alone.
    dead_letter_replay_kafka_sasl_username: str = ""
    dead_letter_replay_kafka_sasl_password: SecretStr | None = None
    # Redis authentication (common.redis_client): AUTH as redis_username (empty: the default
    # user) with redis_password (unset: no AUTH). A rediss:// redis_url is TLS, verified
    # against redis_ca_file (empty: the system's CAs). Credentials written into redis_url
    # win over these.
    redis_username: str = ""
    redis_password: SecretStr | None = None
    redis_ca_file: str = ""
    # The HMAC key that signs the Redis rule snapshot (alerting.rules.snapshot): the
    # rule-updater signs what it writes, the evaluator checks before it trusts a rule.
    rule_snapshot_key: SecretStr | None = None

    rule_service_address: str = "127.0.0.1:50051"
    # Clients of the rule-service (alertctl, the demo, the tests) connect over TLS unless
    # this is false, verifying its certificate against tls_ca_file (empty: the system's CAs).
    rule_service_tls: bool = True
    tls_ca_file: str = ""
    # The API key a client of the rule-service presents (`authorization: Bearer <key>`).
    api_key: SecretStr | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_sender: str = "alerts@alerting.local"
    # The delivery policy of a client that set none (docs/architecture/ARCHITECTURE.md,
    # "Delivery policy"): the sender delivers by it, the rule-service shows it. group_wait 0
    # and no group_by send each notification alone, at once.
    default_group_by: tuple[str, ...] = ()
    default_group_wait_seconds: int = 10
    default_group_interval_seconds: int = 300
    # Emails per client and recipient in any hour, for a client whose policy sets no limit.
    max_emails_per_hour: int = 100

    # This instance's name in its consumer groups (static membership): a worker restarted
    # under the same name gets its partitions back without a rebalance. Unique per running
    # instance of a service; empty means dynamic membership.
    instance_id: str = ""
    # A consumer that stops heartbeating loses its partitions after this long.
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 1_000
    # How often each worker measures its consumer lag (and drops the partitions it lost).
    consumer_lag_interval_seconds: float = 5.0

    # Consumer batches: as many as batch_max_records, waiting at most batch_timeout_ms.
    batch_max_records: int = 1000
    batch_timeout_ms: int = 50
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 10.0

    # The address every server of a service binds (metrics, gRPC, SMTP); containers use 0.0.0.0.
    listen_host: str = "127.0.0.1"
    # Port of /metrics and /healthz; 0 means the service's port in common.ports.
    metrics_port: int = 0
    # zipkin: to OTEL_EXPORTER_ZIPKIN_ENDPOINT (the exporter reads it), else localhost:9411.
    otel_exporter: Literal["otlp", "zipkin", "console", "none"] = "none"
    otel_endpoint: str = "http://127.0.0.1:4317"  # OTLP/gRPC
    # Fraction of new traces recorded (alerts started by the producer); the rest propagate unsampled.
    otel_sample_ratio: float = 1.0
    log_level: str = "INFO"
    # "json": one JSON object per line (time, level, logger, message, service, trace_id, span_id).
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        """Every secret setting X (a SecretStr) may instead be given as a file holding it,
        named by ALERTING_X_FILE, so that secrets need not sit in the environment. A value
        given directly wins."""
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            if not _is_secret(info.annotation) or data.get(name) not in (None, ""):
                continue
            path = os.environ.get(f"ALERTING_{name.upper()}_FILE", "").strip()
            if path:
                try:
                    data[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as error:
                    raise ValueError(f"ALERTING_{name.upper()}_FILE: cannot read {path}: {error.strerror}") from None
        return data

    def dead_letter_replayer(self) -> Settings:
        """These settings with Kafka logins of the dead-letter replay's principal, when one is set."""
        if not self.dead_letter_replay_kafka_sasl_username:
            return self
        return self.model_copy(update={
            "kafka_sasl_username": self.dead_letter_replay_kafka_sasl_username,
            "kafka_sasl_password": self.dead_letter_replay_kafka_sasl_password,
        })

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def redis_key(self, name: str) -> str:
        return f"{self.redis_key_prefix}{name}"


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


def secret_value(secret: SecretStr | None) -> str:
    """A secret setting's value; empty when unset."""
    return "" if secret is None else secret.get_secret_value()


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
    default_service_name: str, settings: Settings, environ: Mapping[str, str] | None = None
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
