"""What every settings class is: ALERTING_* environment variables, each secret also from a
file, and the backoff every wait for a dependency uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AlertingSettings(BaseSettings):
    """The base of every settings class: variables named `ALERTING_<FIELD>`, a secret's also `_FILE`."""

    # The defaults are the local stack's. No credential has a default (docs/security.md):
    # each is given, best as a file; deploy/local-stack generates them into .local/secrets/.

    model_config = SettingsConfigDict(env_prefix="ALERTING_", extra="ignore")

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


class RetrySettings(AlertingSettings):
    """How a process waits out an outage of Kafka, Postgres or Redis: it retries, backing off."""

    retry_initial_seconds: float = Field(default=0.2, description=(
        "Backoff of a failing durable step: attempt n waits initial × 2^(n-1) plus up to 1 s of jitter."))
    retry_max_seconds: float = Field(default=10.0, description="The longest of those waits.")


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


def secret_value(secret: SecretStr | None) -> str:
    """A secret setting's value; empty when unset."""
    return "" if secret is None else secret.get_secret_value()
