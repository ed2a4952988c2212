"""Each process's settings, made of the concerns it uses and its own: a process reads no
setting it does not use (the alert-producer no SMTP server, no database login)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from alerting.common import ports
from alerting.common.settings.database import (
    ControlPlaneLogin,
    DataPlaneLogin,
    MigrationLogin,
    NotificationAdminLogin,
    RuleReaderLogin,
)
from alerting.common.settings.delivery import PolicySettings, ReceiverSettings, SmtpSettings
from alerting.common.settings.kafka import DeadLetterReplaySettings, KafkaSettings, WorkerSettings
from alerting.common.settings.redis import RuleSnapshotSettings
from alerting.common.settings.rule_service_client import RuleServiceClientSettings, RuleServiceTls
from alerting.common.settings.telemetry import ServiceSettings, TelemetrySettings

# The rule-service's quotas by default (and its servicers', made without settings in tests).
DEFAULT_MAX_RECIPIENTS_PER_CLIENT = 100
DEFAULT_MAX_KEYS_PER_CLIENT = 20
DEFAULT_MAX_SILENCE_SECONDS = 365 * 24 * 3600.0
DEFAULT_MAX_SILENCES_PER_CLIENT = 1000
DEFAULT_MAX_RECEIVERS_PER_CLIENT = 100


class RuleRebuildSettings(KafkaSettings, RuleSnapshotSettings, RuleReaderLogin):
    """The rule snapshot and its rebuild from Postgres (alerting.rules.rebuild): the rule-updater's, the evaluator's."""


class ProducerSettings(KafkaSettings, TelemetrySettings):
    """The alert-producer's: the broker, and its traces."""


class RuleServiceSettings(DeadLetterReplaySettings, ControlPlaneLogin, NotificationAdminLogin, PolicySettings,
                          ReceiverSettings, RuleServiceTls, ServiceSettings):
    """The rule-service's own."""

    grpc_port: int = Field(default=ports.RULE_SERVICE_GRPC_PORT, description="The gRPC port; 0 picks a free one.")
    grace_seconds: float = Field(default=5.0, description="How long calls in flight may finish when the service stops.")
    outbox_retention_seconds: float = Field(default=7 * 24 * 3600.0, description=(
        "Published `rule_outbox` rows older than this are deleted (`rule.changed` keeps every change)."))
    # TLS is required unless rule_service_tls is false (plaintext on purpose, e.g. behind a
    # TLS-terminating proxy).
    tls_cert_file: str = Field(default="", description="The server's certificate chain (PEM).")
    tls_key_file: str = Field(default="", description="The server's private key (PEM).")
    bootstrap_admin_key: SecretStr | None = Field(default=None, description=(
        "The first ADMIN key (`ak_<key id>.<secret>`), stored at start unless its key id is known."))
    api_key_cache_seconds: float = Field(default=2.0, description=(
        "How long a key's check is reused: the most a revocation takes to reach this instance."))
    api_key_cache_entries: int = Field(default=10_000, description="How many keys' checks each instance keeps.")
    unknown_key_cache_entries: int = Field(default=10_000, description="How many unknown key ids each instance keeps.")
    # Past the burst, a peer is refused before its key is looked up.
    auth_failures_per_second: float = Field(default=0.2, description=(
        "Failed authentications allowed per peer address (IPv6: per /64), once its burst is spent."))
    auth_failure_burst: int = Field(default=20, description="Failed authentications a peer address may make at once.")
    tenant_key_self_service: bool = Field(default=False, description=(
        "false: only ADMIN keys create keys. true: a TENANT key creates its client's TENANT keys, each"
        " expiring no later than itself."))
    max_rules_per_client: int = Field(default=1000, description="Rules per client.")
    max_recipients_per_client: int = Field(default=DEFAULT_MAX_RECIPIENTS_PER_CLIENT, description=(
        "Distinct email addresses across a client's rules."))
    max_keys_per_client: int = Field(default=DEFAULT_MAX_KEYS_PER_CLIENT, description="Valid TENANT keys per client.")
    max_silence_seconds: float = Field(default=DEFAULT_MAX_SILENCE_SECONDS, description=(
        "The latest a new silence may end, from now."))
    max_silences_per_client: int = Field(default=DEFAULT_MAX_SILENCES_PER_CLIENT, description=(
        "Silences not yet ended a client may have (the sender checks each notification against them)."))
    max_receivers_per_client: int = Field(default=DEFAULT_MAX_RECEIVERS_PER_CLIENT, description=(
        "Webhook and Slack receivers a client may have."))
    max_request_bytes: int = Field(default=1024 * 1024, description="The largest request accepted, in bytes.")
    rate_limit_per_second: float = Field(default=50.0, description=(
        "Requests per second per client on each instance, all of a tenant's keys together (ADMIN keys"
        " are not limited)."))
    rate_limit_burst: int = Field(default=100, description="Requests a client may make at once beyond that rate.")


class RuleUpdaterSettings(WorkerSettings, RuleRebuildSettings, ServiceSettings):
    """The rule-updater's: a worker of `rule.changed` that writes the snapshot."""


class EvaluatorSettings(WorkerSettings, RuleRebuildSettings, ServiceSettings):
    """The evaluator's: a worker of `alerts.new` that warms its index from the snapshot."""


class AggregatorSettings(WorkerSettings, DataPlaneLogin, ServiceSettings):
    """The aggregator's own."""

    sweep_after_seconds: float = Field(default=60.0, description=(
        "A notification never attempted, published this long before a point the sender has read past,"
        " is published again (its message was lost)."))
    sweep_interval_seconds: float = Field(default=15.0, description=(
        "How often the sweeper runs and counts `PENDING` and `FAILED` notifications."))


class SenderSettings(WorkerSettings, DataPlaneLogin, SmtpSettings, PolicySettings, ReceiverSettings, ServiceSettings):
    """The sender's own."""

    delivery_lease_seconds: float = Field(default=120.0, description=(
        "How long a claimed notification or digest is this sender's: longer than any one attempt takes."))
    delivery_retry_initial_seconds: float = Field(default=5.0, description=(
        "Backoff between attempts of one email: initial × 2^(n-1), capped, then half to all of it (jitter)."))
    delivery_retry_max_seconds: float = Field(default=600.0, description="The cap of that backoff.")
    delivery_max_age_seconds: float = Field(default=24 * 3600.0, description=(
        "A notification still undeliverable this long after its creation (or its retry) is `FAILED`."))
    retry_poll_seconds: float = Field(default=1.0, description="How often the retry scheduler looks for due retries.")
    retry_batch: int = Field(default=100, description=(
        "How many notifications (or digests) the retry and digest schedulers take at once."))
    digest_poll_seconds: float = Field(default=0.5, description="How often the digest scheduler looks for due digests.")
    webhook_timeout_seconds: float = Field(default=10.0, description=(
        "How long a receiver has to answer one request (a redirect's included, each)."))
    webhook_connect_timeout_seconds: float = Field(default=5.0, description=(
        "How long connecting to a receiver may take."))
    webhook_requests_per_host: int = Field(default=4, description=(
        "Requests in flight to one host at most; more wait their turn, briefly."))
    webhook_host_wait_seconds: float = Field(default=5.0, description=(
        "How long a request waits for its host's turn before it is tried again later (DEFERRED)."))
    webhook_max_response_bytes: int = Field(default=64 * 1024, description="How much of a receiver's answer is read.")
    webhook_max_redirects: int = Field(default=3, description="307 and 308 redirects followed per request, at most.")
    outbound_ca_file: str = Field(default="", description=(
        "The CA (PEM) that receivers' HTTPS certificates are verified against; empty: the system's CAs."))
    notification_link: str = Field(default="", description=(
        "Where a person looks a notification up, `{id}` replaced by its id (or a digest's), shown in Slack"
        " messages; empty: the alertctl command that shows it."))


class MigrateSettings(MigrationLogin, ControlPlaneLogin, RuleReaderLogin, DataPlaneLogin, NotificationAdminLogin):
    """`migrate`'s: it logs in as the migration role and sets the service roles' passwords."""


class DemoSettings(KafkaSettings, RuleServiceClientSettings, TelemetrySettings):
    """The demo's: it makes a tenant through the rule-service and publishes its alerts."""


class SmtpSinkSettings(ServiceSettings):
    """The smtp-sink's own."""

    mail_dir: Path = Field(default=Path(".local/mail"), description=(
        "Where received mail is kept, one `.eml` file per message (relative to the working directory)."))
    smtp_sink_port: int = Field(default=ports.SMTP_SINK_PORT, description="The SMTP port it listens on.")
    # For trying out refusals.
    smtp_sink_rcpt_replies: dict[str, str] = Field(default={}, description=(
        'A JSON object, recipient address → the reply to its RCPT instead of accepting'
        ' (`{"gone@x.io": "550 5.1.1 no such user"}`).'))
    smtp_sink_data_replies: dict[str, str] = Field(default={}, description=(
        "A JSON object, recipient address → the reply at DATA to a message addressed to it"
        ' (`{"x@y.io": "554 5.6.0 content rejected"}`).'))
    smtp_sink_smtputf8: bool = Field(default=True, description="Offer SMTPUTF8 (non-ASCII addresses).")


class WebhookSinkSettings(ServiceSettings):
    """The webhook-sink's own."""

    webhook_dir: Path = Field(default=Path(".local/webhooks"), description=(
        "Where received requests are kept, one JSON file each (relative to the working directory)."))
    webhook_sink_port: int = Field(default=ports.WEBHOOK_SINK_PORT, description="The HTTP port it listens on.")
    metrics_port: int = Field(default=ports.WEBHOOK_SINK_METRICS_PORT, description=(
        "Where it serves /metrics, /livez and /readyz."))
    webhook_sink_secrets_dir: Path = Field(default=Path(".local/secrets/webhooks"), description=(
        "Where each webhook receiver's signing secret is, a file named as the receiver (its path's last part)."))
    webhook_sink_replies: dict[str, int] = Field(default={}, description=(
        'For trying out failures: a JSON object, receiver name → the HTTP status to answer instead (`{"gone": 410}`).'))
