"""Decoding `notifications.ready` is total: a notification id the sender can look up, or a reason."""

import uuid

from aiokafka import ConsumerRecord
from hypothesis import given

from alerting.common.kafka import InvalidEvent
from alerting.sender.notifications import decode_notification_ready
from alerting.testsupport.strategies import any_notification_ready, records, values_of


@given(records(values_of(any_notification_ready()), topic="notifications.ready"))
def test_any_record_decodes_to_a_canonical_notification_id_or_to_a_reason(record_: ConsumerRecord) -> None:
    try:
        event = decode_notification_ready(record_)
    except InvalidEvent as error:
        assert str(error)
        return
    assert str(uuid.UUID(event.notification_id)) == event.notification_id
