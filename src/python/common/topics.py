"""Kafka topic names (before Settings.topic_prefix). deploy/topics.txt creates them."""

ALERTS_NEW = "alerts.new"
RULE_CHANGED = "rule.changed"
ALERTS_MATCHED = "alerts.matched"
NOTIFICATIONS_READY = "notifications.ready"

INPUT_TOPICS = (ALERTS_NEW, RULE_CHANGED, ALERTS_MATCHED, NOTIFICATIONS_READY)


def dead_letter(topic: str) -> str:
    return f"{topic}.dlq"


SCHEMA_VERSION = 1
