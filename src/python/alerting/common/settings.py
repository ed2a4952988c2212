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

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Every service reads these; each uses the ones it needs."""

    model_config = SettingsConfigDict(env_prefix="ALERTING_", extra="ignore")

    # The local stack's defaults: its SASL_SSL listener, its Postgres and its Redis over TLS.
    # No credential has a default (docs/security.md): each is given, best as a file
    # (ALERTING_<NAME>_FILE); deploy/local-stack generates them into .local/secrets/.
    kafka_bootstrap: str = Field(default="127.0.0.1:9094", description="Kafka bootstrap servers, comma-separated.")
    topic_prefix: str = Field(default="", description=(
        "Put before every topic name and consumer group id, so that tests can share one broker."))
    database_url: str = Field(default="postgresql://alerting@127.0.0.1:5432/alerting", description=(
        "Postgres' address and database; its user is the owner role, which tools and tests log in as."
        " Each service logs in as its own role instead (the `*_DATABASE_USER` settings)."))
    database_pool_size: int = Field(default=10, description=(
        "The most connections of a service's pool (the fewest is 1)."))
    # Who logs in to database_url's database (migrations/MIGRATION_STRATEGY.md, "Roles").
    # Migrations run as the migration role, which alone may create roles and set their
    # passwords, and acts as the owner for everything else (db.migration_url). Each service
    # logs in as its own role, granted only what it needs; `migrate up` sets these roles'
    # passwords from the same settings (not the ones left unset).
    database_password: SecretStr | None = Field(default=None, description=(
        "The owner role's password, instead of one written in the URL."))
    migration_database_user: str = Field(default="alerting_migrator", description=(
        "The role `migrate` logs in as: it creates the service roles and acts as the owner."))
    migration_database_password: SecretStr | None = Field(default=None, description="The migration role's password.")
    control_plane_database_user: str = Field(default="alerting_control_plane", description="The rule-service's role.")
    control_plane_database_password: SecretStr | None = Field(default=None, description=(
        "The rule-service role's password."))
    rule_reader_database_user: str = Field(default="alerting_rule_reader", description=(
        "The role the rule-updater and the evaluator rebuild the rule snapshot as."))
    rule_reader_database_password: SecretStr | None = Field(default=None, description=(
        "The rule reader role's password."))
    data_plane_database_user: str = Field(default="alerting_data_plane", description=(
        "The aggregator's and the sender's role."))
    data_plane_database_password: SecretStr | None = Field(default=None, description="The data plane role's password.")
    notification_admin_database_user: str = Field(default="alerting_notification_admin", description=(
        "The role the rule-service's NotificationService reads and retries notifications as."))
    notification_admin_database_password: SecretStr | None = Field(default=None, description=(
        "The notification admin role's password."))
    redis_url: str = Field(default="rediss://127.0.0.1:6380/0", description=(
        "Redis, which holds the rule snapshot; `rediss://` is TLS. Credentials written in it win over"
        " `ALERTING_REDIS_USERNAME` and `ALERTING_REDIS_PASSWORD`."))
    redis_key_prefix: str = Field(default="", description=(
        "Put before every Redis key, for the same reason as the topic prefix."))
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="SASL_SSL", description=(
            "How every Kafka client connects. SASL_* authenticate with SCRAM (a client refuses to start"
            " without a username and password); PLAINTEXT is for a broker of your own: the local stack has"
            " no such listener."))
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(default="SCRAM-SHA-512", description=(
        "The SCRAM mechanism."))
    kafka_sasl_username: str = Field(default="", description="The Kafka principal this program logs in as.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="That principal's password.")
    kafka_ssl_ca_file: str = Field(default="", description=(
        "The CA (PEM) that the broker's certificate is verified against; empty: the system's CAs."))
    # The rule-service's dead-letter replay writes to the input topics as a principal of its
    # own, so that the rule-service's principal may write rule.changed alone.
    dead_letter_replay_kafka_sasl_username: str = Field(default="", description=(
        "rule-service: the principal that dead-letter replay publishes as (empty: the service's own)."))
    dead_letter_replay_kafka_sasl_password: SecretStr | None = Field(default=None, description=(
        "The dead-letter replay principal's password."))
    redis_username: str = Field(default="", description="The Redis ACL user to log in as; empty: the default user.")
    redis_password: SecretStr | None = Field(default=None, description="That user's password; unset: no AUTH.")
    redis_ca_file: str = Field(default="", description=(
        "The CA (PEM) that a `rediss://` server is verified against; empty: the system's CAs."))
    rule_snapshot_key: SecretStr | None = Field(default=None, description=(
        "The HMAC key that signs the Redis rule snapshot: the rule-updater signs what it writes, the"
        " evaluator checks every entry before it trusts one."))
    receiver_secret_key: SecretStr | None = Field(default=None, description=(
        "rule-service and sender: the key (32+ characters) that seals webhook signing secrets in"
        " Postgres; the rule-service seals new ones, the sender unseals them to sign."))
    outbound_allow_http: bool = Field(default=False, description=(
        "rule-service and sender: receivers' URLs may be plain http:// (the local stack's own receiver);"
        " false: HTTPS only."))
    outbound_allowed_networks: tuple[str, ...] = Field(default=(), description=(
        "rule-service and sender: networks (CIDR, JSON list) that receivers may reach although they are"
        " not public (loopback, private, link-local): none by default."))

    rule_service_address: str = Field(default="127.0.0.1:50051", description=(
        "Where alertctl (the default of `--address`), the demo and the tests find the rule-service."))
    rule_service_tls: bool = Field(default=True, description=(
        "Clients connect to the rule-service over TLS; the rule-service serves TLS. false: plaintext on"
        " purpose (behind a proxy that terminates TLS)."))
    tls_ca_file: str = Field(default="", description=(
        "The CA (PEM) that clients verify the rule-service's certificate against; empty: the system's CAs."))
    api_key: SecretStr | None = Field(default=None, description=(
        "The API key a client of the rule-service presents (`authorization: Bearer <key>`)."))
    smtp_host: str = Field(default="127.0.0.1", description="The SMTP server the sender sends to.")
    smtp_port: int = Field(default=2525, description="The SMTP server's port.")
    smtp_sender: str = Field(default="alerts@alerting.local", description="`From:` of every email.")
    # The delivery policy of a client that set none (docs/architecture/ARCHITECTURE.md,
    # "Delivery policy"): the sender delivers by it, the rule-service shows it.
    default_group_by: tuple[str, ...] = Field(default=(), description=(
        "The default policy's grouping: which of `severity`, `source`, `name`, `rule` split a client's"
        ' notifications into groups, as a JSON list (`["severity","source"]`).'))
    default_group_wait_seconds: int = Field(default=10, description=(
        "The default policy's group_wait; 0 with no group_by sends each notification alone, at once."))
    default_group_interval_seconds: int = Field(default=300, description="The default policy's group_interval.")
    max_emails_per_hour: int = Field(default=100, description=(
        "Emails per client and recipient in any hour, for a client whose policy sets no limit."))

    instance_id: str = Field(default="", description=(
        "This instance's name in its consumer groups (static membership): a worker restarted under the"
        " same name within the session timeout gets its partitions back without a rebalance, and a sender"
        " frees its own leases. Unique per running instance; empty: a dynamic member."))
    consumer_session_timeout_ms: int = Field(default=10_000, description=(
        "A consumer that stops heartbeating loses its partitions after this long."))
    consumer_heartbeat_interval_ms: int = Field(default=1_000, description="The consumers' heartbeat interval.")
    consumer_lag_interval_seconds: float = Field(default=5.0, description=(
        "How often each Kafka worker measures the lag of the partitions it owns (which also tells"
        " `/readyz` whether the broker answers)."))

    batch_max_records: int = Field(default=1000, description="The most records of one consumer batch.")
    batch_timeout_ms: int = Field(default=50, description="The longest wait for a batch.")
    retry_initial_seconds: float = Field(default=0.2, description=(
        "Backoff of a failing durable step: attempt n waits initial × 2^(n-1) plus up to 1 s of jitter."))
    retry_max_seconds: float = Field(default=10.0, description="The longest of those waits.")

    listen_host: str = Field(default="127.0.0.1", description=(
        "The address every server of a service binds (metrics, gRPC, SMTP); containers use 0.0.0.0."))
    metrics_port: int = Field(default=0, description=(
        "Port of `/metrics`, `/livez`, `/readyz` and `/healthz`; 0: the service's port in"
        " `alerting/common/ports.py`."))
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
