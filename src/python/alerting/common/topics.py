"""Kafka topic names (before KafkaSettings.topic_prefix) and the configs topics are created with.
deploy/topics.txt creates them; deploy_checks/compose_test.py checks that the two agree."""

from dataclasses import dataclass

ALERTS_NEW = "alerts.new"
RULE_CHANGED = "rule.changed"
ALERTS_MATCHED = "alerts.matched"
NOTIFICATIONS_READY = "notifications.ready"

INPUT_TOPICS = (ALERTS_NEW, RULE_CHANGED, ALERTS_MATCHED, NOTIFICATIONS_READY)

# Consumer groups (before the topic prefix), one per worker service.
RULE_UPDATER_GROUP = "rule-updater"
EVALUATOR_GROUP = "evaluator"
AGGREGATOR_GROUP = "aggregator"
SENDER_GROUP = "sender"


@dataclass(frozen=True)
class Subscription:
    """What a worker service consumes: its name (in metrics, spans and logs), its consumer
    group and the topic."""

    service: str
    group: str
    topic: str


RULE_UPDATER = Subscription("rule-updater", RULE_UPDATER_GROUP, RULE_CHANGED)
EVALUATOR = Subscription("evaluator", EVALUATOR_GROUP, ALERTS_NEW)
AGGREGATOR = Subscription("aggregator", AGGREGATOR_GROUP, ALERTS_MATCHED)
SENDER = Subscription("sender", SENDER_GROUP, NOTIFICATIONS_READY)

# Topic configs that differ from the broker's defaults.
# rule.changed is compacted instead of deleted after the retention time: a snapshot's
# next_offset must stay readable however old the snapshot is. Changes are keyed by rule_id
# (the broker refuses a message without a key on a compacted topic) and a delete is an
# ordinary message, never a tombstone, so compaction keeps the newest change of every rule,
# and replaying from any offset still ends in the same rules.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    RULE_CHANGED: {"cleanup.policy": "compact"},
}


def dead_letter(topic: str) -> str:
    return f"{topic}.dlq"


SCHEMA_VERSION = 1
