"""The generated settings reference: current, complete, and made of whatever settings classes
the modules hold."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerting.common.settings import KafkaSettings, RuleServiceSettings
from alerting.deploy_checks.settings_reference import (
    COMMAND,
    REFERENCE,
    SETTINGS_MODULES,
    own_fields,
    reference,
    render,
    settings_classes,
)


def test_the_committed_reference_is_what_the_settings_classes_say() -> None:
    assert Path(REFERENCE).read_text(encoding="utf-8") == reference(), (
        f"{REFERENCE} is stale: run `{COMMAND}` and commit it")


def test_every_setting_has_a_description() -> None:
    undescribed = [f"{cls.__name__}.{name}" for cls in settings_classes(SETTINGS_MODULES)
                   for name, info in own_fields(cls).items() if not (info.description or "").strip()]
    assert undescribed == []


def test_the_reference_lists_each_class_of_the_modules_once_with_the_fields_it_adds() -> None:
    classes = settings_classes(SETTINGS_MODULES)
    assert [cls.__name__ for cls in classes] == [
        "AlertingSettings", "RetrySettings", "KafkaSettings", "WorkerSettings", "DeadLetterReplaySettings",
        "DatabaseSettings", "MigrationLogin", "ControlPlaneLogin", "RuleReaderLogin", "DataPlaneLogin",
        "NotificationAdminLogin", "RedisSettings", "RuleSnapshotSettings", "SmtpSettings", "PolicySettings",
        "ReceiverSettings", "RuleServiceTls", "RuleServiceClientSettings", "TelemetrySettings", "ServiceSettings",
        "RuleRebuildSettings", "ProducerSettings", "RuleServiceSettings", "RuleUpdaterSettings", "EvaluatorSettings",
        "AggregatorSettings", "SenderSettings", "MigrateSettings", "DemoSettings", "SmtpSinkSettings",
        "WebhookSinkSettings"]
    assert "kafka_bootstrap" in own_fields(KafkaSettings) and "kafka_bootstrap" not in own_fields(RuleServiceSettings)
    assert reference().count("| `ALERTING_KAFKA_BOOTSTRAP` |") == 1


class Prefixed(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="X_")


class KafkaPart(Prefixed):
    """Kafka."""

    bootstrap: str = Field(default="127.0.0.1:9094", description="Brokers | comma-separated.")
    password: SecretStr | None = Field(default=None, description="A password.")


class DatabasePart(Prefixed):
    pool: int = Field(default=10, description="Pool size.")
    mode: Literal["a", "b"] = Field(default="a", description="Mode.")


class Service(KafkaPart, DatabasePart):
    """One service's own."""

    lease_seconds: float = Field(default=7200.0, description="Lease.")
    group_by: tuple[str, ...] = Field(default=(), description="Groups.")


def test_settings_split_into_several_classes_are_each_listed_in_definition_order() -> None:
    # This module's own classes, not KafkaSettings, which it imports; Prefixed has no field of its own.
    classes = settings_classes([sys.modules[__name__]])
    assert KafkaSettings not in classes
    assert [cls.__name__ for cls in classes] == ["Prefixed", "KafkaPart", "DatabasePart", "Service"]
    here = f"(`{__name__}`)"
    assert render(classes).split("\n## ")[1:] == [
        f"`KafkaPart` {here}\n\nKafka.\n\n| variable | type | default | description |\n"
        "| --- | --- | --- | --- |\n"
        "| `X_BOOTSTRAP` | string | `127.0.0.1:9094` | Brokers \\| comma-separated. |\n"
        "| `X_PASSWORD` | secret, or unset | *(unset)* | A password. Or a file holding it: `X_PASSWORD_FILE`. |\n",
        f"`DatabasePart` {here}\n\n| variable | type | default | description |\n"
        "| --- | --- | --- | --- |\n"
        "| `X_POOL` | integer | `10` | Pool size. |\n"
        "| `X_MODE` | one of `a`, `b` | `a` | Mode. |\n",
        f"`Service` {here}\n\nOne service's own.\n\n| variable | type | default | description |\n"
        "| --- | --- | --- | --- |\n"
        "| `X_LEASE_SECONDS` | number | `7200.0` (2 hours) | Lease. |\n"
        "| `X_GROUP_BY` | JSON list of strings | `[]` | Groups. |\n",
    ]
