"""alertctl's output: aligned tables for people, JSON for scripts (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Fields whose 0 means something else, as people read them.
ZERO_CELLS = {("alerting.v1.NotificationPolicy", "max_emails_per_hour"): "default"}
# Nested messages other than timestamps, as one cell.
MESSAGE_CELLS: dict[str, Callable[[Message], str]] = {
    "alerting.v1.DeadLetterSource": lambda source: "/".join(
        str(getattr(source, name)) for name in ("topic", "partition", "offset")),
}


def cell(message: Message, column: str) -> str:
    """A field as people read it: enums by name, times in ISO 8601, lists comma-joined, bytes
    as UTF-8 (other bytes escaped), control characters in text escaped (a key's name may hold
    them), a dead letter's source as topic/partition/offset, a 0 that means a default as
    `default`."""
    field = message.DESCRIPTOR.fields_by_name[column]
    value = getattr(message, column)
    if value == 0 and (message.DESCRIPTOR.full_name, column) in ZERO_CELLS:
        return ZERO_CELLS[message.DESCRIPTOR.full_name, column]
    if field.enum_type is not None:
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", field.enum_type.name).upper() + "_"
        return field.enum_type.values_by_number[value].name.removeprefix(prefix)
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
        return value.ToJsonString() if message.HasField(column) else ""
    if field.message_type is not None:
        return MESSAGE_CELLS[field.message_type.full_name](value) if message.HasField(column) else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        return CONTROL.sub(lambda control: f"\\x{ord(control[0]):02x}", value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Iterable):
        return ",".join(str(item) for item in value)
    return str(value)


def table(messages: Sequence[Message], columns: tuple[str, ...]) -> str:
    """Aligned columns under a header and a rule, one row per message."""
    rows = [columns] + [tuple(cell(m, c) for c in columns) for m in messages]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def as_json(messages: Sequence[Message]) -> str:
    """A JSON array of the messages in protobuf's JSON mapping with the proto field names:
    every scalar field, zero values too; enums by name, int64 as strings, bytes in base64;
    an unset message field (a timestamp not yet reached) left out."""
    return json.dumps([MessageToDict(m, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
                       for m in messages], indent=2)
