"""Decoding `notifications.ready` (pure)."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from alerting.common.kafka import InvalidEvent, decode
from alerting.common.validation import InvalidField, require_canonical_uuid
from alerting.v1 import events_pb2


def decode_notification_ready(record: ConsumerRecord) -> events_pb2.NotificationReady:
    event = decode(record, events_pb2.NotificationReady)
    try:
        require_canonical_uuid(event.notification_id, "notification_id")
    except InvalidField as error:
        raise InvalidEvent(str(error)) from error
    return event
