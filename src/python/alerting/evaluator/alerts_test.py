"""Decoding `alerts.new` is total: any record gives an alert that every later step can
handle, or InvalidEvent with a reason; the year-10000 alert that crash-looped the
evaluator among them."""

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.kafka import InvalidEvent
from alerting.evaluator.alerts import decode_alert_new, indexed_rule, matched_event
from alerting.evaluator.matcher import ClientMatch
from alerting.sender.email_message import render_email
from alerting.testsupport.strategies import YEAR_10000, alert_new, any_alert_new, records, valid_alerts, values_of
from alerting.v1 import alert_pb2, rule_pb2

MATCH = ClientMatch("6f1c2e8a-0b7d-4c1e-9a55-0d6f5b1e2c3a", ("1b4e28ba-2fa1-41d2-883f-0016d3cca427",),
                    ("ops@x.io",))


def record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("alerts.new", 0, 7, 0, 0, None, value, None, 0, len(value or b""), ())


@given(records(values_of(any_alert_new()), topic="alerts.new"))
def test_any_record_decodes_to_an_alert_every_later_step_handles_or_to_a_reason(record_: ConsumerRecord) -> None:
    try:
        event = decode_alert_new(record_)
    except InvalidEvent as error:
        assert str(error)
        return
    # What the evaluator publishes, the aggregator stores and the sender renders.
    matched = matched_event(event.alert, MATCH).SerializeToString()
    assert alert_pb2.Alert.FromString(event.alert.SerializeToString()) == event.alert
    assert render_email("n-1", "alerts@x.io", list(MATCH.emails), event.alert, list(MATCH.rule_ids))
    assert matched


@given(valid_alerts())
def test_a_valid_alert_decodes_to_itself(alert: alert_pb2.Alert) -> None:
    assert decode_alert_new(record(alert_new(alert).SerializeToString())).alert == alert


@given(valid_alerts(), st.sampled_from([YEAR_10000, 2**63 - 1, -(2**63), -1, 0]))
def test_an_event_time_no_datetime_can_hold_is_refused_naming_the_field(alert: alert_pb2.Alert, seconds: int) -> None:
    alert.event_ts.seconds = seconds
    with pytest.raises(InvalidEvent, match=r"^alert\.event_ts: .* is out of range$"):
        decode_alert_new(record(alert_new(alert).SerializeToString()))


def test_the_year_10000_alert_is_refused_with_its_reason() -> None:
    """The record that crash-looped the evaluator, byte for byte as the outside producer sent it."""
    alert = alert_pb2.Alert(alert_id="y10k", severity=alert_pb2.SEVERITY_HIGH, source="db", name="disk")
    alert.event_ts.seconds = YEAR_10000
    with pytest.raises(InvalidEvent) as refused:
        decode_alert_new(record(alert_new(alert).SerializeToString()))
    assert str(refused.value) == "alert.event_ts: 253402387200 seconds since the epoch is out of range"


def test_a_rules_endpoints_are_its_emails_and_its_receivers() -> None:
    receiver = "0b7e7dbe-8c4c-4b57-9b1a-8d2b4c3f2a10"
    rule = rule_pb2.Rule(rule_id="r", client_id="c", severity="HIGH", source="db", name="*", emails=["ops@x.io"],
                         receiver_ids=[receiver], enabled=True, version=3)
    assert indexed_rule(rule).emails == ("ops@x.io", f"receiver:{receiver}")
    rule.ClearField("emails")
    assert indexed_rule(rule).emails == (f"receiver:{receiver}",)
