"""Decoding `alerts.matched`: what the aggregator can never store is rejected up front, and
whatever a record holds, decoding gives a row or a reason."""

import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given

from alerting.aggregator.batch import NotificationRow, decode_alert_matched, insert_arguments, unique_rows
from alerting.common.kafka import InvalidEvent
from alerting.common.validation import MAX_ALERT_ID_BYTES, MAX_EVENT_BYTES
from alerting.producer.alerts import build_alert
from alerting.sender.email_message import render_email
from alerting.testsupport.strategies import any_alert_matched, records, values_of
from alerting.v1 import alert_pb2, events_pb2


def record(alert_id: str = "a-1", emails: tuple[str, ...] = ("ops@x.io",), client_id: str | None = None,
           rule_id: str | None = None) -> ConsumerRecord:
    alert = build_alert("HIGH", "db", "disk")
    alert.alert_id = alert_id
    event = events_pb2.AlertMatched(
        schema_version=1, client_id=client_id or str(uuid.uuid4()), alert=alert,
        rule_ids=[rule_id or str(uuid.uuid4())], emails=emails,
    )
    value = event.SerializeToString()
    return ConsumerRecord("alerts.matched", 0, 0, 0, 0, None, value, None, 0, len(value), [])


def reason_of(record_: ConsumerRecord) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_alert_matched(record_)
    return str(caught.value)


def test_a_valid_match_decodes() -> None:
    assert decode_alert_matched(record("a-1", ("ops@x.io", "dba@x.io"))).emails == ["ops@x.io", "dba@x.io"]
    receiver = "receiver:0b7e7dbe-8c4c-4b57-9b1a-8d2b4c3f2a10"
    assert decode_alert_matched(record("a-1", ("ops@x.io", receiver))).emails == ["ops@x.io", receiver]


def test_nul_in_the_alert_id_is_rejected_naming_the_field() -> None:
    assert reason_of(record("a\x00b")) == "alert.alert_id: contains the control character U+0000"


def test_nul_in_an_email_is_rejected_naming_the_address() -> None:
    reason = reason_of(record(emails=("ops@x.io", "dba\x00@x.io")))
    assert reason == "emails[1]: contains the control character U+0000"


def test_an_alert_id_too_long_for_the_unique_index_is_rejected() -> None:
    assert decode_alert_matched(record("é" * (MAX_ALERT_ID_BYTES // 2))).alert.alert_id
    assert reason_of(record("é" * (MAX_ALERT_ID_BYTES // 2) + "x")) == (
        f"alert.alert_id: longer than {MAX_ALERT_ID_BYTES} bytes")


@pytest.mark.parametrize("fields, reason", [
    ({"client_id": "0B7E7DBE-8C4C-4B57-9B1A-8D2B4C3F2A10"}, "client_id: not a canonical UUID"),
    ({"rule_id": "r-1"}, "rule_ids[0]: not a UUID: 'r-1'"),
    ({"emails": ("not an address",)}, "emails[0]: malformed email address"),
    ({"emails": ("Ops@EXAMPLE.com",)}, "emails[0]: not normalized"),
    ({"emails": ()}, "emails: empty"),
    ({"emails": ("receiver:r-1",)}, "emails[0]: not a UUID: 'r-1'"),
])
def test_what_the_rule_service_never_writes_is_rejected(fields: dict[str, Any], reason: str) -> None:
    assert reason_of(record(**fields)).startswith(reason)


def test_an_oversized_record_is_rejected_before_decoding() -> None:
    value = b"\x00" * (MAX_EVENT_BYTES + 1)
    oversized = ConsumerRecord("alerts.matched", 0, 0, 0, 0, None, value, None, 0, len(value), [])
    assert reason_of(oversized) == f"value: {MAX_EVENT_BYTES + 1} bytes, more than {MAX_EVENT_BYTES}"


@given(records(values_of(any_alert_matched()), topic="alerts.matched"))
def test_any_record_decodes_to_a_row_the_sender_can_render_or_to_a_reason(record_: ConsumerRecord) -> None:
    try:
        event = decode_alert_matched(record_)
    except InvalidEvent as error:
        assert str(error)
        return
    [row] = unique_rows([NotificationRow(event.client_id, event.alert.alert_id, tuple(event.rule_ids),
                                         tuple(event.emails), event.alert.SerializeToString(), "")])
    assert all(insert_arguments([row]))
    # What the sender reads back from the row, it can render.
    stored = alert_pb2.Alert.FromString(row.alert)
    assert render_email("n-1", "alerts@x.io", list(row.emails), stored, list(row.rule_ids))
