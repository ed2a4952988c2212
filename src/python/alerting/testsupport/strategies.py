"""Hypothesis strategies for what can arrive on the platform's topics: its protobuf events
built field by field, valid ones and ones with any value in any field (int64 extremes,
negative nanos, megabyte strings, NUL, every enum number), raw protobuf wire data that the
Python API cannot build (invalid UTF-8 in a string field), bytes that are not protobuf at
all, and any headers.

Valid events are valid by construction (they stay inside the bounds of
alerting.common.validation), so a test can say what processing them must produce.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from aiokafka import ConsumerRecord
from hypothesis import strategies as st

from alerting.common import topics
from alerting.common.validation import EARLIEST_EVENT, MAX_CONTEXT_ENTRIES, MAX_FIELD
from alerting.common.vocabulary import SEVERITIES, SEVERITY_VALUES, WILDCARD
from alerting.v1 import alert_pb2, events_pb2, rule_pb2

T = TypeVar("T")
INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
UINT32 = (0, 2**32 - 1)
# The alert that crash-looped the evaluator: its event time lies in the year 10000.
YEAR_10000 = 253402387200

# Any integer a field of the type can hold, the extremes and their neighbours more often.
int64s = st.one_of(st.sampled_from([*INT64, INT64[0] + 1, INT64[1] - 1, -1, 0, 1]), st.integers(*INT64))
int32s = st.one_of(st.sampled_from([*INT32, -1, 0, 1, 999_999_999, 1_000_000_000]), st.integers(*INT32))
uint32s = st.one_of(st.sampled_from([*UINT32, 1, 2]), st.integers(*UINT32))

# Text a protobuf string can hold (no surrogates), unusual characters included, and a few
# that are huge; raw_fields() gives strings that are not even UTF-8.
any_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "*", "\x00", "a\x00b", "\u202e", "\u200b", "\x7f", "\x9f", "\ufeff", " ", "\n"]),
    st.builds(lambda char, count: char * count, st.sampled_from(["x", "é", "\U0001f525"]),
              st.sampled_from([MAX_FIELD, MAX_FIELD + 1, 1025, 300_000, 1 << 20])),
)


def ids() -> st.SearchStrategy[str]:
    """Canonical UUIDs, as the platform writes ids."""
    return st.uuids().map(str)


# ---------------------------------------------------------------- valid events
names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="*,"),
                min_size=1, max_size=12)
severities = st.sampled_from(SEVERITIES)
emails = st.builds(lambda local, domain: f"{local}@{domain}.io",
                   st.text("abcdefghij0123456789", min_size=1, max_size=8), st.sampled_from(["x", "y", "z"]))


# Event times (seconds) that every check accepts: from 2000 to a fixed past day (not the
# clock: a strategy must draw the same way every time).
event_times = st.integers(int(EARLIEST_EVENT.timestamp()), int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()))


@st.composite
def valid_alerts(draw: st.DrawFn, sources: st.SearchStrategy[str] = names,
                 alert_names: st.SearchStrategy[str] = names) -> alert_pb2.Alert:
    alert = alert_pb2.Alert(
        alert_id=draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=64)),
        severity=SEVERITY_VALUES[draw(severities)],
        source=draw(sources),
        name=draw(alert_names),
        context=draw(st.dictionaries(names, st.text(max_size=20).filter(lambda v: "\x00" not in v),
                                     max_size=4)),
    )
    alert.event_ts.seconds = draw(event_times)
    alert.event_ts.nanos = draw(st.integers(0, 999_999_999))
    return alert


@st.composite
def valid_rules(draw: st.DrawFn, client_ids: st.SearchStrategy[str] = ids(),
                sources: st.SearchStrategy[str] = names, rule_names: st.SearchStrategy[str] = names,
                rule_ids: st.SearchStrategy[str] = ids()) -> rule_pb2.Rule:
    pattern = [draw(st.sampled_from([*SEVERITIES, WILDCARD])), draw(st.one_of(st.just(WILDCARD), sources)),
               draw(st.one_of(st.just(WILDCARD), rule_names))]
    if pattern == [WILDCARD] * 3:
        pattern[1] = draw(sources)
    return rule_pb2.Rule(
        rule_id=draw(rule_ids), client_id=draw(client_ids), severity=pattern[0], source=pattern[1],
        name=pattern[2], emails=sorted(set(draw(st.lists(emails, min_size=1, max_size=3)))),
        enabled=draw(st.booleans()), version=draw(st.integers(1, 50)))


def alert_new(alert: alert_pb2.Alert) -> events_pb2.AlertNew:
    return events_pb2.AlertNew(schema_version=topics.SCHEMA_VERSION, alert=alert)


# ---------------------------------------------------------------- any value in any field
@st.composite
def any_alerts(draw: st.DrawFn) -> alert_pb2.Alert:
    """An alert whose every field may hold anything its type can."""
    alert = draw(valid_alerts())
    for field in draw(st.sets(st.sampled_from(["alert_id", "severity", "source", "name", "event_ts", "context"]))):
        if field == "severity":
            alert.severity = cast(Any, draw(st.one_of(st.integers(0, 6), int32s)))  # open enum: any int32
        elif field == "event_ts":
            if draw(st.booleans()):
                alert.ClearField("event_ts")
            else:
                alert.event_ts.seconds = draw(st.one_of(st.just(YEAR_10000), int64s))
                alert.event_ts.nanos = draw(int32s)
        elif field == "context":
            alert.context.clear()
            alert.context.update(draw(st.dictionaries(any_text, any_text, max_size=MAX_CONTEXT_ENTRIES + 2)))
        else:
            setattr(alert, field, draw(any_text))
    return alert


@st.composite
def any_rules(draw: st.DrawFn) -> rule_pb2.Rule:
    rule = draw(valid_rules())
    for field in draw(st.sets(st.sampled_from(["rule_id", "client_id", "severity", "source", "name", "emails",
                                               "version"]))):
        if field == "emails":
            del rule.emails[:]
            rule.emails.extend(draw(st.lists(st.one_of(emails, any_text), max_size=22)))
        elif field == "version":
            rule.version = draw(int64s)
        else:
            setattr(rule, field, draw(st.one_of(any_text, ids())))
    return rule


def _maybe(draw: st.DrawFn, value: T, anything: st.SearchStrategy[T]) -> T:
    """`value`, or (a third of the time) anything of its type."""
    return draw(anything) if draw(st.integers(0, 2)) == 0 else value


@st.composite
def any_alert_new(draw: st.DrawFn) -> events_pb2.AlertNew:
    return events_pb2.AlertNew(schema_version=_maybe(draw, topics.SCHEMA_VERSION, uint32s),
                               alert=draw(any_alerts()))


@st.composite
def any_alert_matched(draw: st.DrawFn) -> events_pb2.AlertMatched:
    return events_pb2.AlertMatched(
        schema_version=_maybe(draw, topics.SCHEMA_VERSION, uint32s),
        client_id=_maybe(draw, draw(ids()), any_text),
        alert=draw(any_alerts()),
        rule_ids=draw(st.lists(st.one_of(ids(), any_text), max_size=4)),
        emails=draw(st.lists(st.one_of(emails, any_text), max_size=4)),
    )


@st.composite
def any_notification_ready(draw: st.DrawFn) -> events_pb2.NotificationReady:
    return events_pb2.NotificationReady(
        schema_version=_maybe(draw, topics.SCHEMA_VERSION, uint32s),
        notification_id=_maybe(draw, draw(ids()), any_text),
        client_id=_maybe(draw, draw(ids()), any_text),
        alert_id=draw(any_text),
    )


@st.composite
def any_source_grants(draw: st.DrawFn) -> rule_pb2.SourceGrant:
    """A grant whose client id and source may be valid or anything."""
    return rule_pb2.SourceGrant(client_id=draw(st.one_of(ids(), any_text)), source=draw(st.one_of(names, any_text)),
                                prefix=draw(st.booleans()))


@st.composite
def any_rule_changed(draw: st.DrawFn) -> events_pb2.RuleChanged:
    """A rule's change or a grant's (ops 3 and 4), each field valid or anything."""
    rule = draw(st.one_of(valid_rules(), any_rules()))
    op = draw(st.one_of(st.sampled_from([1, 2, 3, 4]), int32s))
    change = events_pb2.RuleChanged(
        schema_version=_maybe(draw, topics.SCHEMA_VERSION, uint32s),
        seq=draw(st.one_of(st.integers(1, 50), int64s)),
        op=cast(Any, op),  # open enum: any int32
        rule_id=draw(st.one_of(st.just(rule.rule_id), ids(), any_text)),
        client_id=rule.client_id,
        rule=rule,
    )
    grant = draw(st.one_of(st.none(), any_source_grants()))
    if grant is not None:
        change.grant.CopyFrom(grant)
        if draw(st.booleans()):  # as the rule-service writes a grant's change: no rule, the grant's client
            change.ClearField("rule")
            change.rule_id, change.client_id = "", grant.client_id
    return change


# ---------------------------------------------------------------- below the Python API
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def wire(fields: list[tuple[int, int, int | bytes]]) -> bytes:
    """Protobuf wire data from (field number, wire type, value) triples: varints (0), 64-bit
    (1), length-delimited (2) and 32-bit (5) fields, whatever a message declares."""
    out = bytearray()
    for number, wire_type, value in fields:
        out += _varint(number << 3 | wire_type)
        if wire_type == 0:
            out += _varint(int(value))
        elif wire_type == 1:
            out += int(value).to_bytes(8, "little", signed=False)
        elif wire_type == 5:
            out += int(value).to_bytes(4, "little", signed=False)
        else:
            payload = bytes(value) if isinstance(value, bytes) else b""
            out += _varint(len(payload)) + payload
    return bytes(out)


# Payloads a length-delimited field may carry: not UTF-8 (a lone surrogate as CESU bytes,
# a stray continuation byte), a nested message of anything, or any bytes.
raw_payloads = st.one_of(
    st.sampled_from([b"\xed\xa0\x80", b"\x80", b"\xff\xfe", b"a\x00b", b""]),
    st.binary(max_size=24),
)


@st.composite
def raw_fields(draw: st.DrawFn) -> bytes:
    """Wire data for any message: known and unknown field numbers, every wire type."""
    fields: list[tuple[int, int, int | bytes]] = []
    for _ in range(draw(st.integers(0, 6))):
        number = draw(st.integers(1, 12))
        wire_type = draw(st.sampled_from([0, 1, 2, 5]))
        if wire_type == 2:
            value: int | bytes = draw(st.one_of(raw_payloads, st.deferred(lambda: raw_fields())))
        else:
            value = draw(st.integers(0, (1 << 64) - 1 if wire_type != 5 else (1 << 32) - 1))
        fields.append((number, wire_type, value))
    return wire(fields)


def values_of(events: st.SearchStrategy[object]) -> st.SearchStrategy[bytes]:
    """A record's value: the event serialized, wire data of any shape, a valid value cut
    short or grown past every bound, or bytes that are no protobuf at all."""
    serialized = events.map(lambda event: event.SerializeToString())  # type: ignore[attr-defined]
    return st.one_of(
        serialized,
        raw_fields(),
        st.tuples(serialized, st.integers(0, 64)).map(lambda pair: pair[0][: pair[1]]),
        serialized.map(lambda value: value + wire([(6, 2, b"x" * 300_000)])),
        st.binary(max_size=64),
    )


# Headers: trace headers well- and ill-formed, and any other key and value (None included).
header_keys = st.one_of(st.sampled_from(["traceparent", "tracestate", "baggage", "dlq.reason", "dlq.source"]),
                        st.text(max_size=12))
header_values = st.one_of(
    st.none(),
    st.sampled_from([b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", b"00-zz-zz-zz", b"\xff\xfe",
                     b"ff-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01", b""]),
    st.binary(max_size=40),
)
headers = st.lists(st.tuples(header_keys, header_values), max_size=4)


def records(values: st.SearchStrategy[bytes], topic: str = "topic") -> st.SearchStrategy[ConsumerRecord]:
    """ConsumerRecords as aiokafka hands them over: any key, value and headers."""
    return st.builds(
        lambda value, key, record_headers, offset: ConsumerRecord(
            topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=key, value=value,
            checksum=None, serialized_key_size=len(key or b""), serialized_value_size=len(value or b""),
            headers=tuple(record_headers)),
        st.one_of(st.none(), values), st.one_of(st.none(), st.binary(max_size=40)), headers, st.integers(0, 2**40),
    )
