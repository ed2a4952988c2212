"""Kafka: the broker and how to log in to it, what a worker's consumer does, and the
principal the rule-service's dead-letter replay publishes as."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from alerting.common.settings.base import RetrySettings


class KafkaSettings(RetrySettings):
    """The broker, and the security every Kafka client of a process uses (common.kafka.kafka_client_options)."""

    kafka_bootstrap: str = Field(default="127.0.0.1:9094", description="Kafka bootstrap servers, comma-separated.")
    topic_prefix: str = Field(default="", description=(
        "Put before every topic name and consumer group id, so that tests can share one broker."))
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

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class WorkerSettings(KafkaSettings):
    """A Kafka worker's consumer group membership and batches (common.kafka.run_worker)."""

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


class DeadLetterReplaySettings(KafkaSettings):
    """The principal the rule-service's dead-letter replay publishes as: its own may write rule.changed alone."""

    dead_letter_replay_kafka_sasl_username: str = Field(default="", description=(
        "rule-service: the principal that dead-letter replay publishes as (empty: the service's own)."))
    dead_letter_replay_kafka_sasl_password: SecretStr | None = Field(default=None, description=(
        "The dead-letter replay principal's password."))

    def dead_letter_replayer(self) -> KafkaSettings:
        """These settings with Kafka logins of the dead-letter replay's principal, when one is set."""
        if not self.dead_letter_replay_kafka_sasl_username:
            return self
        return self.model_copy(update={
            "kafka_sasl_username": self.dead_letter_replay_kafka_sasl_username,
            "kafka_sasl_password": self.dead_letter_replay_kafka_sasl_password,
        })
