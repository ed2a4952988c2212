"""Decoding `alerts.matched`: what the aggregator can never store is rejected up front."""

import uuid

import pytest
from aiokafka import ConsumerRecord

from alerting.aggregator.batch import MAX_ALERT_ID_BYTES, decode_alert_matched
from alerting.common.kafka import InvalidEvent
from alerting.v1 import alert_pb2, events_pb2


def record(alert_id: str = "a-1", emails: tuple[str, ...] = ("ops@x.io",)) -> ConsumerRecord:
    event = events_pb2.AlertMatched(
        schema_version=1, client_id=str(uuid.uuid4()), alert=alert_pb2.Alert(alert_id=alert_id),
        rule_ids=[str(uuid.uuid4())], emails=emails,
    )
    value = event.SerializeToString()
    return ConsumerRecord("alerts.matched", 0, 0, 0, 0, None, value, None, 0, len(value), [])


def reason_of(record_: ConsumerRecord) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode_alert_matched(record_)
    return str(caught.value)


def test_a_valid_match_decodes() -> None:
    assert decode_alert_matched(record("a-1", ("ops@x.io", "dba@x.io"))).emails == ["ops@x.io", "dba@x.io"]


def test_nul_in_the_alert_id_is_rejected_naming_the_field() -> None:
    assert reason_of(record("a\x00b")) == "alert.alert_id: contains U+0000 (NUL), which Postgres text cannot store"


def test_nul_in_an_email_is_rejected_naming_the_address() -> None:
    reason = reason_of(record(emails=("ops@x.io", "dba\x00@x.io")))
    assert reason == "emails[1]: contains U+0000 (NUL), which Postgres text cannot store"


def test_an_alert_id_too_long_for_the_unique_index_is_rejected() -> None:
    assert decode_alert_matched(record("é" * (MAX_ALERT_ID_BYTES // 2))).alert.alert_id
    assert reason_of(record("é" * (MAX_ALERT_ID_BYTES // 2) + "x")) == (
        f"alert.alert_id: longer than {MAX_ALERT_ID_BYTES} bytes")
