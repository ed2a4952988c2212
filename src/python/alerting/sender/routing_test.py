"""The routing decision (pure): silenced, alone or grouped; group keys; when a digest is due;
and the hourly limit, on generated inputs and named cases."""

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerting.rules.policies import GROUP_BY_FIELDS, Policy
from alerting.rules.silences import Matchers
from alerting.sender.routing import (
    HOUR,
    Notified,
    Silence,
    Way,
    allowed_at,
    due_at,
    group_key,
    is_immediate,
    route,
    silencing,
    take_budget,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
IMMEDIATE = Policy((), 0, 300, None)
GROUPED = Policy(("source",), 10, 300, None)
moments = st.integers(-7200, 7200).map(lambda seconds: NOW + timedelta(seconds=seconds))
past = st.integers(-7200, 0).map(lambda seconds: NOW + timedelta(seconds=seconds))
emails = st.lists(st.sampled_from(["a@x.io", "b@x.io", "c@x.io"]), min_size=1, max_size=3)
notifieds = st.builds(
    lambda n, client, severity, source, name, rules, to: Notified(f"n{n}", client, severity, source, name, rules, to),
    st.integers(0, 10_000), st.sampled_from(["c1", "c2"]), st.sampled_from(["LOW", "HIGH"]),
    st.sampled_from(["db", "web"]), st.sampled_from(["disk", "cpu"]),
    st.lists(st.sampled_from(["r1", "r2", "r3"]), min_size=1, max_size=2).map(tuple), emails.map(tuple))
policies = st.builds(lambda by, wait, interval: Policy(tuple(by), wait, interval, None),
                     st.lists(st.sampled_from(GROUP_BY_FIELDS), unique=True), st.integers(0, 3600),
                     st.integers(1, 86400))


def notified(**fields: object) -> Notified:
    defaults: dict[str, object] = dict(notification_id="n1", client_id="c1", severity="HIGH", source="db",
                                       name="disk", rule_ids=("r1",), emails=("a@x.io",))
    return Notified(**{**defaults, **fields})  # type: ignore[arg-type]


def silence(severity: str = "*", source: str = "*", name: str = "*", starts: int = -60, ends: int = 60,
            expired: int | None = None) -> Silence:
    return Silence("s1", Matchers(severity, source, name), NOW + timedelta(seconds=starts),
                   NOW + timedelta(seconds=ends), None if expired is None else NOW + timedelta(seconds=expired))


def test_an_active_matching_silence_mutes_whatever_the_policy() -> None:
    for policy in (IMMEDIATE, GROUPED):
        assert route(notified(), policy, [silence(source="db")], NOW, within_limit=True) == (
            route(notified(), policy, [silence(source="db")], NOW, within_limit=False))
        assert route(notified(), policy, [silence(source="db")], NOW, within_limit=True).way == Way.SILENCED


def test_a_silence_that_ended_was_expired_or_has_not_begun_mutes_nothing() -> None:
    for gone in (silence(ends=0), silence(expired=0), silence(starts=1), silence(name="cpu")):
        assert silencing([gone], "HIGH", "db", "disk", NOW) is None
    assert silencing([silence(ends=1)], "HIGH", "db", "disk", NOW) == "s1"


def test_the_immediate_policy_sends_alone_within_the_limit_and_groups_beyond_it() -> None:
    assert is_immediate(IMMEDIATE) and not is_immediate(GROUPED) and not is_immediate(Policy((), 1, 300, None))
    assert route(notified(), IMMEDIATE, [], NOW, within_limit=True).way == Way.ALONE
    beyond = route(notified(), IMMEDIATE, [], NOW, within_limit=False)
    assert beyond.way == Way.GROUPED and beyond.group_key == group_key(IMMEDIATE, notified())
    assert route(notified(), GROUPED, [], NOW, within_limit=True).way == Way.GROUPED


@given(policies, notifieds, notifieds)
def test_notifications_share_a_group_exactly_when_their_grouped_values_and_recipients_are_equal(
    policy: Policy, first: Notified, second: Notified
) -> None:
    values = {"severity": (first.severity, second.severity), "source": (first.source, second.source),
              "name": (first.name, second.name),
              "rule": (sorted(first.rule_ids), sorted(second.rule_ids))}
    same = all(
        values[field][0] == values[field][1] for field in policy.group_by) and set(first.emails) == set(second.emails)
    assert (group_key(policy, first) == group_key(policy, second)) == same


@given(policies, moments, st.one_of(st.none(), moments))
def test_a_digest_is_due_after_group_wait_or_group_interval_after_the_last_which_is_later(
    policy: Policy, now: datetime, last: datetime | None
) -> None:
    due = due_at(policy, now, last)
    candidates = [now + timedelta(seconds=policy.group_wait_seconds)]
    if last is not None:
        candidates.append(last + timedelta(seconds=policy.group_interval_seconds))
    assert due == max(candidates)


@given(st.integers(1, 5), st.dictionaries(st.sampled_from(["a@x.io", "b@x.io"]), st.lists(past, max_size=8)))
def test_the_limit_allows_the_first_moment_every_recipient_is_under_it(
    limit: int, sends: dict[str, list[datetime]]
) -> None:
    def under(moment: datetime) -> bool:
        return all(sum(1 for t in times if moment - HOUR < t <= moment) < limit for times in sends.values())

    at = allowed_at(limit, sends, NOW)
    assert at >= NOW
    assert under(at)
    # No earlier moment from now would do: only sends before now count, so the earliest
    # moment is now or the moment one of them leaves the hour.
    assert at == NOW or not under(at - timedelta(microseconds=1))


@given(st.lists(notifieds, max_size=20), st.integers(0, 4))
def test_the_budget_lets_through_in_order_while_every_recipient_has_an_email_left(
    items: list[Notified], each: int
) -> None:
    left = {(item.client_id, email): each for item in items for email in item.emails}
    allowed = take_budget(items, dict(left))
    used: Counter[tuple[str, str]] = Counter()
    for item, ok in zip(items, allowed, strict=True):
        pairs = {(item.client_id, email) for email in item.emails}
        assert ok == all(used[pair] < each for pair in pairs)
        if ok:
            used.update(pairs)
    assert all(count <= each for count in used.values())
