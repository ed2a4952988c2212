"""Typed settings read from ALERTING_* environment variables, defaulting to the local stack."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTING_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prepended to every topic name and consumer group, so that tests can share one broker.
    topic_prefix: str = ""
    database_url: str = "postgresql://alerting:alerting@127.0.0.1:5432/alerting"
    database_pool_size: int = 10
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prepended to every Redis key, for the same reason as topic_prefix.
    redis_key_prefix: str = ""

    rule_service_address: str = "127.0.0.1:50051"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_sender: str = "alerts@alerting.local"

    # This instance's name in its consumer groups (static membership): a worker restarted
    # under the same name gets its partitions back without a rebalance. Unique per running
    # instance of a service; empty means dynamic membership.
    instance_id: str = ""
    # A consumer that stops heartbeating loses its partitions after this long.
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 1_000

    # Consumer batches: as many as batch_max_records, waiting at most batch_timeout_ms.
    batch_max_records: int = 1000
    batch_timeout_ms: int = 50
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 10.0

    # The address every server of a service binds (metrics, gRPC, SMTP); containers use 0.0.0.0.
    listen_host: str = "127.0.0.1"
    # Port of /metrics and /healthz; 0 means the service's port in common.ports.
    metrics_port: int = 0
    otel_exporter: Literal["otlp", "console", "none"] = "none"
    otel_endpoint: str = "http://127.0.0.1:4317"
    # Fraction of new traces recorded (alerts started by the producer); the rest propagate unsampled.
    otel_sample_ratio: float = 1.0
    log_level: str = "INFO"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def redis_key(self, name: str) -> str:
        return f"{self.redis_key_prefix}{name}"
