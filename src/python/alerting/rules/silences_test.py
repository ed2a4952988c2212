import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.validation import REFUSED_CATEGORIES, InvalidField
from alerting.common.vocabulary import SEVERITIES, WILDCARD
from alerting.evaluator.matcher import Grant, RuleIndex
from alerting.rules.silences import (
    ACTIVE,
    EXPIRED,
    PENDING,
    Matchers,
    comment,
    is_active,
    matchers,
    silence_matches,
    state,
    window,
)
from alerting.testsupport.strategies import any_text

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)  # Postgres' and datetime's resolution
YEAR = timedelta(days=365)
ORDER = {PENDING: 0, ACTIVE: 1, EXPIRED: 2}

times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
spans = st.timedeltas(min_value=TICK, max_value=timedelta(days=400))


@st.composite
def stored_silences(draw: st.DrawFn) -> tuple[datetime, datetime, datetime | None]:
    """(starts_at, ends_at, expired_at) as the table can hold them: ends after it starts;
    expired early, or not."""
    starts_at = draw(times)
    return starts_at, starts_at + draw(spans), draw(st.none() | times)


def problem(call: Callable[[], object]) -> str:
    with pytest.raises(InvalidField) as caught:
        call()
    return str(caught.value)


# ---------------------------------------------------------------- when a silence mutes
@pytest.mark.parametrize("now, expired_at, expected", [
    (NOW - TICK, None, PENDING),
    (NOW, None, ACTIVE),  # from starts_at on
    (NOW + timedelta(hours=2) - TICK, None, ACTIVE),
    (NOW + timedelta(hours=2), None, EXPIRED),  # ends_at itself is past the end
    (NOW + timedelta(hours=1) - TICK, NOW + timedelta(hours=1), ACTIVE),
    (NOW + timedelta(hours=1), NOW + timedelta(hours=1), EXPIRED),  # expired early: from expired_at on
    (NOW - timedelta(hours=1), NOW - timedelta(hours=2), EXPIRED),  # expired while pending: never active
    (NOW + timedelta(hours=1), NOW - timedelta(hours=2), EXPIRED),
])
def test_a_silence_of_two_hours_from_now_by_the_clock(now: datetime, expired_at: datetime | None,
                                                      expected: str) -> None:
    starts_at, ends_at = NOW, NOW + timedelta(hours=2)
    assert (state(starts_at, ends_at, expired_at, now), is_active(starts_at, ends_at, expired_at, now)) == (
        expected, expected == ACTIVE)


@given(stored_silences(), times)
def test_a_silence_is_active_exactly_in_its_window_and_before_its_expiry(
        silence: tuple[datetime, datetime, datetime | None], now: datetime) -> None:
    starts_at, ends_at, expired_at = silence
    in_window = starts_at <= now < ends_at
    before_expiry = expired_at is None or now < expired_at
    assert is_active(starts_at, ends_at, expired_at, now) == (in_window and before_expiry)
    assert (state(starts_at, ends_at, expired_at, now) == ACTIVE) == is_active(starts_at, ends_at, expired_at, now)


@given(stored_silences(), times, times)
def test_a_silence_goes_pending_active_expired_and_never_back(
        silence: tuple[datetime, datetime, datetime | None], first: datetime, second: datetime) -> None:
    earlier, later = sorted((first, second))
    assert ORDER[state(*silence, earlier)] <= ORDER[state(*silence, later)]


@given(stored_silences())
def test_the_boundaries_starts_at_ends_at_and_expired_at(silence: tuple[datetime, datetime, datetime | None]) -> None:
    starts_at, ends_at, expired_at = silence
    expiry = ends_at if expired_at is None else min(ends_at, expired_at)
    assert not is_active(starts_at, ends_at, expired_at, starts_at - TICK)
    assert is_active(starts_at, ends_at, expired_at, starts_at) == (starts_at < expiry)
    assert is_active(starts_at, ends_at, expired_at, expiry - TICK) == (starts_at <= expiry - TICK)
    assert not is_active(starts_at, ends_at, expired_at, expiry)
    assert state(starts_at, ends_at, expired_at, expiry) == EXPIRED


# ---------------------------------------------------------------- what a silence mutes
alert_values = st.text("abAB*é", min_size=1, max_size=3)
alerts = st.tuples(st.sampled_from(SEVERITIES), alert_values, alert_values)
choices = st.tuples(st.booleans(), st.booleans(), st.booleans())


@pytest.mark.parametrize("silence, matched", [
    (Matchers("HIGH", "db", "disk_full"), True),
    (Matchers("*", "*", "*"), True),
    (Matchers("*", "db", "*"), True),
    (Matchers("LOW", "*", "*"), False),
    (Matchers("*", "DB", "*"), False),  # case-sensitive
    (Matchers("*", "db", "disk"), False),  # exact, not a prefix
    (Matchers("*", "d*", "*"), False),  # "*" inside a value is a character, not a glob
])
def test_a_silence_mutes_what_each_matcher_takes(silence: Matchers, matched: bool) -> None:
    assert silence_matches(silence, "HIGH", "db", "disk_full") == matched


@given(alerts, choices)
def test_a_silence_made_from_an_alert_mutes_it_whichever_matchers_are_wildcards(
        alert: tuple[str, str, str], wild: tuple[bool, bool, bool]) -> None:
    silence = Matchers(*(WILDCARD if star else value for value, star in zip(alert, wild, strict=True)))
    assert silence_matches(silence, *alert)


@given(alerts, alerts, choices)
def test_a_silence_mutes_exactly_the_alerts_a_rule_with_the_same_patterns_matches(
        made_from: tuple[str, str, str], alert: tuple[str, str, str], wild: tuple[bool, bool, bool]) -> None:
    """The evaluator's index, an implementation of its own, is the oracle: a silence reads its
    matchers as a rule reads its patterns (a rule of every "*" is not one, and such a silence
    mutes everything)."""
    silence = Matchers(*(WILDCARD if star else value for value, star in zip(made_from, wild, strict=True)))
    if silence == Matchers(WILDCARD, WILDCARD, WILDCARD):
        assert silence_matches(silence, *alert)
        return
    index = RuleIndex()
    index.load([("rule", "client", *silence, ("ops@x.io",), True, 1)])
    index.grant(Grant("client", alert[1], prefix=False))
    assert silence_matches(silence, *alert) == bool(index.match(*alert))


# ---------------------------------------------------------------- what a request may hold
@pytest.mark.parametrize("fields, error", [
    (("URGENT", "db", "*"), "severity: unknown severity 'URGENT' (expected LOW, MEDIUM, HIGH, CRITICAL or *)"),
    (("high", "db", "*"), "severity: unknown severity 'high' (expected LOW, MEDIUM, HIGH, CRITICAL or *)"),
    (("*", "", "*"), "source: missing (use * to match any value)"),
    (("*", "*", "n" * 257), "name: at most 256 characters"),
    (("*", "db\u202e", "*"), "source: contains the format character U+202E"),
    (("*", "db", "disk\n"), "name: contains the control character U+000A"),
])
def test_invalid_matchers_name_the_field(fields: tuple[str, str, str], error: str) -> None:
    assert problem(lambda: matchers(*fields)) == error


def test_every_matcher_may_be_a_wildcard_and_values_are_kept_as_given() -> None:
    assert matchers("*", "*", "*") == Matchers("*", "*", "*")
    assert matchers("CRITICAL", " db ", "é" * 256) == Matchers("CRITICAL", " db ", "é" * 256)


def acceptable(value: str) -> bool:
    """What an alert's source or name may be (alerting.common.validation), or "*"."""
    return 1 <= len(value) <= 256 and all(unicodedata.category(char) not in REFUSED_CATEGORIES for char in value)


@given(st.one_of(st.sampled_from([*SEVERITIES, WILDCARD]), any_text), any_text, any_text)
def test_matchers_are_accepted_exactly_when_each_is_a_severity_or_an_alert_value_else_the_first_bad_is_named(
        severity: str, source: str, name: str) -> None:
    bad = [field for field, ok in (("severity", severity in (*SEVERITIES, WILDCARD)),
                                   ("source", acceptable(source)), ("name", acceptable(name))) if not ok]
    try:
        accepted = matchers(severity, source, name)
    except InvalidField as error:
        assert bad and error.field == bad[0]
    else:
        assert (bad, accepted) == ([], Matchers(severity, source, name))


@pytest.mark.parametrize("value, expected", [
    ("  disk swap, CHG-1234  ", "disk swap, CHG-1234"),
    ("x" * 1000, "x" * 1000),
])
def test_a_comment_is_kept_without_its_surrounding_blanks(value: str, expected: str) -> None:
    assert comment(value) == expected


@pytest.mark.parametrize("value, error", [
    ("", "comment: missing: say why the notifications are silenced"),
    ("   ", "comment: missing: say why the notifications are silenced"),
    ("x" * 1001, "comment: at most 1000 characters"),
    ("first line\nsecond", "comment: contains the control character U+000A"),
    ("ok\u200b", "comment: contains the format character U+200B"),
])
def test_an_invalid_comment_is_named(value: str, error: str) -> None:
    assert problem(lambda: comment(value)) == error


# ---------------------------------------------------------------- when a new silence starts and ends
@pytest.mark.parametrize("starts_at, ends_at, duration, expected", [
    (None, None, timedelta(hours=2), (NOW, NOW + timedelta(hours=2))),
    (NOW - timedelta(days=3), None, timedelta(hours=2), (NOW, NOW + timedelta(hours=2))),  # a past start: now
    (NOW + timedelta(days=1), None, timedelta(hours=2), (NOW + timedelta(days=1), NOW + timedelta(days=1, hours=2))),
    (None, NOW + TICK, None, (NOW, NOW + TICK)),
    (None, NOW + YEAR, None, (NOW, NOW + YEAR)),
    (None, None, YEAR, (NOW, NOW + YEAR)),
])
def test_a_window_starts_now_or_later_and_ends_as_asked(
        starts_at: datetime | None, ends_at: datetime | None, duration: timedelta | None,
        expected: tuple[datetime, datetime]) -> None:
    assert window(starts_at, ends_at, duration, NOW, YEAR) == expected


@pytest.mark.parametrize("starts_at, ends_at, duration, error", [
    (None, None, None, "ends_at: give ends_at or duration, one of them"),
    (None, NOW + TICK, timedelta(hours=1), "ends_at: give ends_at or duration, one of them"),
    (None, NOW, None, "ends_at: 2026-03-02T10:00:00+00:00 is not after the silence's start,"
                      " 2026-03-02T10:00:00+00:00"),
    (NOW + timedelta(hours=2), NOW + timedelta(hours=1), None,
     "ends_at: 2026-03-02T11:00:00+00:00 is not after the silence's start, 2026-03-02T12:00:00+00:00"),
    (None, None, timedelta(0), "duration: must be positive"),
    (None, None, -timedelta(hours=1), "duration: must be positive"),
    (None, None, YEAR + TICK, "duration: longer than 365 days, the longest a silence may last"),
    (None, NOW + YEAR + TICK, None, "ends_at: the silence would end at 2027-03-02T10:00:00.000001+00:00, more"
                                    " than 365 days from now, the longest a silence may last"),
    (NOW + timedelta(days=300), None, timedelta(days=100),
     "duration: the silence would end at 2027-04-06T10:00:00+00:00, more than 365 days from now, the longest a"
     " silence may last"),
    (NOW + YEAR, None, timedelta(hours=1), "starts_at: 2027-03-02T10:00:00+00:00 is more than 365 days from now,"
                                           " the longest a silence may last"),
])
def test_an_invalid_window_names_the_field(starts_at: datetime | None, ends_at: datetime | None,
                                           duration: timedelta | None, error: str) -> None:
    assert problem(lambda: window(starts_at, ends_at, duration, NOW, YEAR)) == error


offsets = st.timedeltas(min_value=-timedelta(days=800), max_value=timedelta(days=800))


@given(times, st.none() | offsets, st.booleans(), offsets,
       st.sampled_from([timedelta(seconds=1), timedelta(hours=1), YEAR]))
def test_a_window_is_accepted_exactly_when_it_ends_after_its_start_and_within_the_longest_from_now(
        now: datetime, start_offset: timedelta | None, by_duration: bool, length: timedelta,
        longest: timedelta) -> None:
    starts_at = None if start_offset is None else now + start_offset
    start = now if starts_at is None or starts_at < now else starts_at
    ends_at, duration = (None, length) if by_duration else (start + length, None)
    acceptable = length > timedelta(0) and start + length <= now + longest
    try:
        accepted = window(starts_at, ends_at, duration, now, longest)
    except InvalidField as error:
        assert not acceptable
        assert error.field in {"starts_at", "duration" if by_duration else "ends_at"}
    else:
        assert acceptable
        assert accepted == (start, start + length)
        assert now <= accepted[0] < accepted[1] <= now + longest
