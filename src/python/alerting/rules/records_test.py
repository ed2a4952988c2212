from datetime import UTC, datetime

from alerting.rules.records import RULE_COLUMNS, rule_from_row


def test_a_row_of_every_column_becomes_the_rule_message() -> None:
    created, updated = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
    row = {
        "rule_id": "0b4a4d2e-54f5-4f9a-9a57-6f0f5f8b2f11", "client_id": "6d1c8f7e-1111-4d3c-8f2a-2b9d3c4e5f60",
        "severity": "HIGH", "source": "db", "name": "*", "emails": ["a@x.io", "b@x.io"], "enabled": False,
        "receiver_ids": ["6d1c8f7e-2222-4d3c-8f2a-2b9d3c4e5f60", "0b4a4d2e-3333-4f9a-9a57-6f0f5f8b2f11"],
        "version": 7, "created_at": created, "updated_at": updated, "updated_by": "abcdefghijkl",
    }
    assert set(RULE_COLUMNS.split(", ")) == set(row)
    rule = rule_from_row(row)
    assert (rule.rule_id, rule.client_id, rule.severity, rule.source, rule.name) == (
        row["rule_id"], row["client_id"], "HIGH", "db", "*")
    assert (list(rule.emails), rule.enabled, rule.version, rule.updated_by) == (
        ["a@x.io", "b@x.io"], False, 7, "abcdefghijkl")
    assert list(rule.receiver_ids) == ["0b4a4d2e-3333-4f9a-9a57-6f0f5f8b2f11", "6d1c8f7e-2222-4d3c-8f2a-2b9d3c4e5f60"]
    assert rule.created_at.ToDatetime(tzinfo=UTC) == created
    assert rule.updated_at.ToDatetime(tzinfo=UTC) == updated
