import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alerting.common.validation import (
    REFUSED_CATEGORIES,
    InvalidField,
    canonical_uuid,
    check_alert,
    email_address,
    email_addresses,
    require_canonical_uuid,
    require_no_control,
)
from alerting.v1 import alert_pb2

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def alert(**fields: object) -> alert_pb2.Alert:
    message = alert_pb2.Alert(alert_id="a-1", severity=alert_pb2.SEVERITY_HIGH, source="db", name="disk")
    message.event_ts.FromDatetime(NOW)
    for name, value in fields.items():
        if name == "event_ts":
            if value is None:
                message.ClearField("event_ts")
            elif isinstance(value, tuple):  # (seconds, nanos), which a datetime may not hold
                message.event_ts.seconds, message.event_ts.nanos = value
            else:
                assert isinstance(value, datetime)
                message.event_ts.FromDatetime(value)
        elif name == "context":
            assert isinstance(value, dict)
            message.context.update(value)
        else:
            setattr(message, name, value)
    return message


def problem(call: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidField) as caught:
        call()
    return str(caught.value)


def test_a_sound_alert_passes() -> None:
    check_alert(alert(context={"host": "db-1", "note": "line one\nline two"}), NOW)


@pytest.mark.parametrize("fields, expected", [
    ({"alert_id": ""}, "alert.alert_id: missing"),
    ({"alert_id": "x" * 1025}, "alert.alert_id: longer than 1024 bytes"),
    ({"alert_id": "a\x00b"}, "alert.alert_id: contains the control character U+0000"),
    ({"severity": 0}, "alert.severity: unknown value 0"),
    ({"severity": 9}, "alert.severity: unknown value 9"),
    ({"source": ""}, "alert.source: missing"),
    ({"name": "n" * 257}, "alert.name: at most 256 characters"),
    ({"event_ts": None}, "alert.event_ts: missing"),
    ({"event_ts": datetime(1970, 1, 1, tzinfo=UTC)}, "alert.event_ts: 1970-01-01T00:00:00+00:00 is out of range"),
    ({"event_ts": NOW + timedelta(days=2)}, "alert.event_ts: 2026-11-28T12:00:00+00:00 is out of range"),
    ({"event_ts": (253402387200, 0)}, "alert.event_ts: 253402387200 seconds since the epoch is out of range"),
    ({"event_ts": (-2**63, 0)}, f"alert.event_ts: {-2**63} seconds since the epoch is out of range"),
    ({"event_ts": (1_700_000_000, -1)}, "alert.event_ts: nanos -1 is not in [0, 999999999]"),
    ({"context": {f"k{n}": "v" for n in range(33)}}, "alert.context: at most 32 entries"),
    ({"context": {"": "v"}}, "alert.context: an empty key"),
    ({"context": {"k": "v" * 2049}}, "alert.context[k]: at most 2048 characters"),
    ({"context": {"k": "a\x00"}}, "alert.context[k]: contains U+0000 (NUL)"),
    # Invisible format characters: they reorder or hide what a person reads in a subject.
    ({"source": "db\u202efdp.exe"}, "alert.source: contains the format character U+202E"),
    ({"name": "disk\u200b"}, "alert.name: contains the format character U+200B"),
    ({"alert_id": "\ufeffa-1"}, "alert.alert_id: contains the format character U+FEFF"),
    ({"context": {"ho\u2060st": "v"}}, "alert.context: contains the format character U+2060"),
    ({"name": "disk\u2028full"}, "alert.name: contains the line separator U+2028"),
])
def test_an_alert_out_of_bounds_names_the_field(fields: dict[str, object], expected: str) -> None:
    assert problem(lambda: check_alert(alert(**fields), NOW)) == expected


def test_an_event_a_little_ahead_of_the_clock_is_accepted() -> None:
    check_alert(alert(event_ts=NOW + timedelta(hours=23)), NOW)


def test_addresses_are_normalized_deduplicated_and_bounded() -> None:
    assert email_address("Ops@EXAMPLE.com", "e") == "Ops@example.com"
    assert email_address("jösé@exämple.com", "e") == "jösé@exämple.com"
    assert email_addresses(["a@x.io", "b@x.io", "a@x.io"]) == ["a@x.io", "b@x.io"]
    assert problem(lambda: email_addresses(["a@x.io"] * 21)) == "emails: at most 20 addresses"
    assert problem(lambda: email_address("a@localhost", "emails[0]")).startswith(
        "emails[0]: malformed email address 'a@localhost'")
    assert problem(lambda: email_address("a" * 250 + "@x.io", "e")) == "e: at most 254 characters"


def test_ids_are_canonical() -> None:
    upper = "0B7E7DBE-8C4C-4B57-9B1A-8D2B4C3F2A10"
    assert canonical_uuid(upper, "id") == upper.lower()
    assert require_canonical_uuid(upper.lower(), "id") == upper.lower()
    assert problem(lambda: require_canonical_uuid(upper, "id")) == f"id: not a canonical UUID: {upper!r}"


@pytest.mark.parametrize("char", ["\u00ad", "\u061c", "\u200b", "\u200c", "\u200d", "\u200e", "\u202a",
                                  "\u202e", "\u2060", "\u2066", "\ufeff", "\U000e0001"])
def test_every_kind_of_invisible_format_character_is_refused(char: str) -> None:
    assert problem(lambda: require_no_control(f"db{char}1", "source")) == \
        f"source: contains the format character U+{ord(char):04X}"


def test_visible_unicode_and_spaces_pass() -> None:
    for value in ("Acmé Ünited", "日本語のアラート", "disk 95\u00a0%", "🔥 db", "a\u0301"):
        require_no_control(value, "name")


@given(st.text(max_size=40))
@example("plain ascii")
@example("tab\tinside")
@example("bidi \u202e override")
def test_a_value_is_refused_exactly_when_it_holds_a_refused_character_which_the_error_names(value: str) -> None:
    refused = [char for char in value if unicodedata.category(char) in REFUSED_CATEGORIES]
    if not refused:
        require_no_control(value, "name")
        return
    char = refused[0]
    kind = REFUSED_CATEGORIES[unicodedata.category(char)]
    assert problem(lambda: require_no_control(value, "name")) == f"name: contains the {kind} U+{ord(char):04X}"
