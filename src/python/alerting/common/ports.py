"""Every port the platform listens on by default, in one place.

deploy/platform, docker-compose.yml and deploy/prometheus/prometheus.yml use the same
numbers; deploy_checks/compose_test.py keeps them in agreement.
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
KAFKA_PORT = 9092
POSTGRES_PORT = 5432
REDIS_PORT = 6379
