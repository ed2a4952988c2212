"""alertctl's output: aligned tables for people, JSON for scripts (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

CLIENT_COLUMNS = ("client_id", "name", "version")
RULE_COLUMNS = ("rule_id", "client_id", "severity", "source", "name", "emails", "enabled", "version")


def cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Iterable) and not isinstance(value, str):
        return ",".join(str(item) for item in value)
    return str(value)


def table(messages: Sequence[Message], columns: tuple[str, ...]) -> str:
    rows = [columns] + [tuple(cell(getattr(m, c)) for c in columns) for m in messages]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def as_json(messages: Sequence[Message]) -> str:
    return json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in messages], indent=2)
