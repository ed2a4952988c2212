"""Each process reads the settings it uses and no other."""

from pydantic_settings import BaseSettings

from alerting.common.settings import (
    AggregatorSettings,
    DemoSettings,
    EvaluatorSettings,
    KafkaSettings,
    MigrateSettings,
    ProducerSettings,
    RuleServiceClientSettings,
    RuleServiceSettings,
    RuleUpdaterSettings,
    SenderSettings,
    SmtpSinkSettings,
    TelemetrySettings,
    WebhookSinkSettings,
)

# What each process runs with: alertctl is a client of the rule-service and nothing else.
PROCESSES: list[type[BaseSettings]] = [
    ProducerSettings, RuleServiceSettings, RuleUpdaterSettings, EvaluatorSettings, AggregatorSettings, SenderSettings,
    RuleServiceClientSettings, MigrateSettings, DemoSettings, SmtpSinkSettings, WebhookSinkSettings,
]


def fields(cls: type[BaseSettings]) -> set[str]:
    return set(cls.model_fields)


def test_the_alert_producer_reads_kafka_and_its_traces_only() -> None:
    assert fields(ProducerSettings) == fields(KafkaSettings) | fields(TelemetrySettings)
    assert fields(ProducerSettings) == {
        "kafka_bootstrap", "topic_prefix", "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
        "kafka_sasl_password", "kafka_ssl_ca_file", "retry_initial_seconds", "retry_max_seconds", "otel_exporter",
        "otel_endpoint", "otel_sample_ratio", "log_level", "log_format"}


def test_each_process_carries_the_database_logins_of_its_own_roles_only() -> None:
    logins = {cls.__name__: sorted(name.removesuffix("_database_user") for name in fields(cls)
                                   if name.endswith("_database_user")) for cls in PROCESSES}
    assert logins == {
        "ProducerSettings": [], "RuleServiceSettings": ["control_plane", "notification_admin"],
        "RuleUpdaterSettings": ["rule_reader"], "EvaluatorSettings": ["rule_reader"],
        "AggregatorSettings": ["data_plane"], "SenderSettings": ["data_plane"], "RuleServiceClientSettings": [],
        "MigrateSettings": ["control_plane", "data_plane", "migration", "notification_admin", "rule_reader"],
        "DemoSettings": [], "SmtpSinkSettings": [], "WebhookSinkSettings": []}


def test_who_reads_the_mail_server_redis_the_api_key_and_the_receivers_secret() -> None:
    def readers(name: str) -> list[str]:
        return [cls.__name__ for cls in PROCESSES if name in fields(cls)]

    assert readers("smtp_password") == ["SenderSettings"]
    assert readers("redis_password") == ["RuleUpdaterSettings", "EvaluatorSettings"]
    assert readers("api_key") == ["RuleServiceClientSettings", "DemoSettings"]
    assert readers("receiver_secret_key") == ["RuleServiceSettings", "SenderSettings"]
    assert readers("dead_letter_replay_kafka_sasl_password") == ["RuleServiceSettings"]
