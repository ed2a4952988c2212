"""Every port the platform listens on by default, in one place.

deploy/local-stack, deploy/platform, docker-compose.yml and deploy/prometheus/prometheus.yml
use the same numbers; deploy_checks/compose_test.py keeps them in agreement.
"""

METRICS_PORTS = {
    "alert-producer": 9101,
    "rule-service": 9102,
    "rule-updater": 9103,
    "evaluator": 9104,
    "aggregator": 9105,
    "sender": 9106,
    "smtp-sink": 9107,
}

RULE_SERVICE_GRPC_PORT = 50051
SMTP_SINK_PORT = 2525
# The local webhook receiver (deploy/platform; not in compose, where tenants bring their own).
WEBHOOK_SINK_PORT = 8091
WEBHOOK_SINK_METRICS_PORT = 9108
# Kafka's SASL_SSL listener for clients on the host: the local stack's only one, and the one
# Docker Compose publishes; containers reach compose's broker on its own listener.
KAFKA_PORT = 9094
COMPOSE_KAFKA_PORT = 9092
POSTGRES_PORT = 5432
REDIS_PORT = 6380  # TLS; there is no plaintext port
