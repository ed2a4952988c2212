"""Decoding `notifications.ready` (pure)."""

from __future__ import annotations

import uuid

from aiokafka import ConsumerRecord

from alerting.common.kafka import InvalidEvent, decode
from alerting.v1 import events_pb2


def decode_notification_ready(record: ConsumerRecord) -> events_pb2.NotificationReady:
    event = decode(record, events_pb2.NotificationReady)
    try:
        uuid.UUID(event.notification_id)
    except ValueError as error:
        raise InvalidEvent(f"notification_id: not a UUID: {event.notification_id!r}") from error
    return event
