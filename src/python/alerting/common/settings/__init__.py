"""Typed settings read from ALERTING_* environment variables, defaulting to the local stack,
split by concern (Kafka, Postgres, Redis, SMTP, telemetry, policy defaults, …), and each
process's settings made of the concerns it uses (services.py). Every settings class is
here: docs/settings.md is generated from them (deploy_checks/settings_reference.py)."""

from alerting.common.settings.base import AlertingSettings, RetrySettings, secret_value
from alerting.common.settings.database import (
    ControlPlaneLogin,
    DatabaseSettings,
    DataPlaneLogin,
    MigrationLogin,
    NotificationAdminLogin,
    RuleReaderLogin,
)
from alerting.common.settings.delivery import PolicySettings, ReceiverSettings, SmtpSettings
from alerting.common.settings.kafka import DeadLetterReplaySettings, KafkaSettings, WorkerSettings
from alerting.common.settings.redis import RedisSettings, RuleSnapshotSettings
from alerting.common.settings.rule_service_client import RuleServiceClientSettings, RuleServiceTls
from alerting.common.settings.services import (
    DEFAULT_MAX_KEYS_PER_CLIENT,
    DEFAULT_MAX_RECEIVERS_PER_CLIENT,
    DEFAULT_MAX_RECIPIENTS_PER_CLIENT,
    DEFAULT_MAX_SILENCE_SECONDS,
    DEFAULT_MAX_SILENCES_PER_CLIENT,
    AggregatorSettings,
    DemoSettings,
    EvaluatorSettings,
    MigrateSettings,
    ProducerSettings,
    RuleRebuildSettings,
    RuleServiceSettings,
    RuleUpdaterSettings,
    SenderSettings,
    SmtpSinkSettings,
    WebhookSinkSettings,
)
from alerting.common.settings.telemetry import (
    ServiceSettings,
    TelemetrySettings,
    TracingSettings,
    service_name,
    tracing_settings,
)

__all__ = [
    "DEFAULT_MAX_KEYS_PER_CLIENT",
    "DEFAULT_MAX_RECEIVERS_PER_CLIENT",
    "DEFAULT_MAX_RECIPIENTS_PER_CLIENT",
    "DEFAULT_MAX_SILENCE_SECONDS",
    "DEFAULT_MAX_SILENCES_PER_CLIENT",
    "AggregatorSettings",
    "AlertingSettings",
    "ControlPlaneLogin",
    "DataPlaneLogin",
    "DatabaseSettings",
    "DeadLetterReplaySettings",
    "DemoSettings",
    "EvaluatorSettings",
    "KafkaSettings",
    "MigrateSettings",
    "MigrationLogin",
    "NotificationAdminLogin",
    "PolicySettings",
    "ProducerSettings",
    "ReceiverSettings",
    "RedisSettings",
    "RetrySettings",
    "RuleReaderLogin",
    "RuleRebuildSettings",
    "RuleServiceClientSettings",
    "RuleServiceSettings",
    "RuleServiceTls",
    "RuleSnapshotSettings",
    "RuleUpdaterSettings",
    "SenderSettings",
    "ServiceSettings",
    "SmtpSettings",
    "SmtpSinkSettings",
    "TelemetrySettings",
    "TracingSettings",
    "WebhookSinkSettings",
    "WorkerSettings",
    "secret_value",
    "service_name",
    "tracing_settings",
]
