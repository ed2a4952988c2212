"""Decoding a record into the event it carries: bounded in size, protobuf, and of the
schema version this code reads; anything else is an InvalidEvent, dead-lettered."""

from __future__ import annotations

from typing import Protocol, TypeVar, cast

from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError, Message

from alerting.common.topics import SCHEMA_VERSION
from alerting.common.validation import MAX_EVENT_BYTES

E = TypeVar("E", bound=Message)


class InvalidEvent(Exception):
    """A message that can never be processed; it goes to the dead-letter topic with this reason."""


class VersionedEvent(Protocol):
    """Every event of alerting.v1 that travels over Kafka carries its schema version."""

    schema_version: int


def decode(record: ConsumerRecord, message_type: type[E]) -> E:
    """The record's value as a `message_type` event of the schema version this code reads;
    InvalidEvent when it is neither. Callers check the event's own fields after this."""
    if len(record.value or b"") > MAX_EVENT_BYTES:
        raise InvalidEvent(f"value: {len(record.value or b'')} bytes, more than {MAX_EVENT_BYTES}")
    try:
        event = message_type.FromString(record.value or b"")
    except DecodeError as error:
        raise InvalidEvent(f"undecodable {message_type.__name__}: {error}") from error
    version = cast(VersionedEvent, event).schema_version
    if version != SCHEMA_VERSION:
        raise InvalidEvent(f"schema_version: unsupported {version} (expected {SCHEMA_VERSION})")
    return event
