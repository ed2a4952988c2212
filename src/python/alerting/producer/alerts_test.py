from datetime import UTC, datetime

import pytest

from alerting.producer.alerts import alert_from_json, build_alert, stable_alert_id

WHEN = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_alert_id_is_stable_and_depends_on_every_field() -> None:
    base = stable_alert_id("HIGH", "db", "disk", WHEN)
    assert base == stable_alert_id("HIGH", "db", "disk", WHEN)
    assert len(base) == 32
    others = {stable_alert_id("LOW", "db", "disk", WHEN), stable_alert_id("HIGH", "web", "disk", WHEN),
              stable_alert_id("HIGH", "db", "cpu", WHEN), stable_alert_id("HIGH", "db", "disk", WHEN.replace(minute=1))}
    assert base not in others and len(others) == 4


def test_same_instant_in_another_zone_is_the_same_alert() -> None:
    a = build_alert("high", "db", "disk", event_ts="2026-11-24T10:00:00Z")
    b = build_alert("HIGH", "db", "disk", event_ts="2026-11-24T11:00:00+01:00")
    assert a.alert_id == b.alert_id


def test_given_alert_id_and_context_are_kept() -> None:
    alert = alert_from_json({"alert_id": "x-1", "severity": "LOW", "source": "s", "name": "n", "context": {"k": "v"}})
    assert alert.alert_id == "x-1" and dict(alert.context) == {"k": "v"}


@pytest.mark.parametrize("document, field", [
    ({"severity": "BAD", "source": "s", "name": "n"}, "severity"),
    ({"severity": "LOW", "source": "", "name": "n"}, "source"),
    ({"severity": "LOW", "source": "s", "name": "n" * 300}, "name"),
    ({"severity": "LOW", "source": "s", "name": "n", "event_ts": "yesterday"}, "event_ts"),
    ({"severity": "LOW", "source": "s", "name": "n", "context": {"k": 1}}, "context"),
])
def test_errors_name_the_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(match=f"^{field}:"):
        alert_from_json(document)
