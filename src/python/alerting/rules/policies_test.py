from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.common.settings import PolicySettings
from alerting.common.validation import InvalidField
from alerting.rules.policies import (
    GROUP_BY_FIELDS,
    MAX_EMAILS_PER_HOUR,
    MAX_GROUP_INTERVAL_SECONDS,
    MAX_GROUP_WAIT_SECONDS,
    Policy,
    default_policy,
    policy_fields,
)


def test_the_default_groups_per_recipients_waits_10_s_and_sends_a_digest_every_5_minutes() -> None:
    assert default_policy(PolicySettings()) == Policy(group_by=(), group_wait_seconds=10, group_interval_seconds=300,
                                                 max_emails_per_hour=None)
    configured = PolicySettings(default_group_by=("source", "severity"), default_group_wait_seconds=0)
    assert default_policy(configured) == Policy(("severity", "source"), 0, 300, None)
    with pytest.raises(InvalidField, match="^group_by: unknown field 'team'"):
        default_policy(PolicySettings(default_group_by=("team",)))


@pytest.mark.parametrize("fields, expected", [
    (([], 0, 1, 0), Policy((), 0, 1, None)),  # one email per notification, at once
    ((["rule", "severity", "rule"], 10, 300, 60), Policy(("severity", "rule"), 10, 300, 60)),
    ((list(GROUP_BY_FIELDS), MAX_GROUP_WAIT_SECONDS, MAX_GROUP_INTERVAL_SECONDS, MAX_EMAILS_PER_HOUR),
     Policy(GROUP_BY_FIELDS, 3600, 86400, 100_000)),
])
def test_a_policy_keeps_its_bounds_and_its_grouping_in_one_order(
        fields: tuple[list[str], int, int, int], expected: Policy) -> None:
    assert policy_fields(*fields) == expected


@pytest.mark.parametrize("fields, error", [
    ((["alert_id"], 10, 300, 0), "group_by: unknown field 'alert_id' (expected any of severity, source, name, rule)"),
    ((["Severity"], 10, 300, 0), "group_by: unknown field 'Severity' (expected any of severity, source, name, rule)"),
    (([], -1, 300, 0), "group_wait_seconds: -1 is not between 0 and 3600"),
    (([], 3601, 300, 0), "group_wait_seconds: 3601 is not between 0 and 3600"),
    (([], 10, 0, 0), "group_interval_seconds: 0 is not between 1 and 86400"),
    (([], 10, 86401, 0), "group_interval_seconds: 86401 is not between 1 and 86400"),
    (([], 10, 300, -5), "max_emails_per_hour: -5 is not between 1 and 100000 (0: the platform's default)"),
    (([], 10, 300, 100_001), "max_emails_per_hour: 100001 is not between 1 and 100000 (0: the platform's default)"),
])
def test_an_invalid_policy_names_the_field(fields: tuple[list[str], int, int, int], error: str) -> None:
    with pytest.raises(InvalidField) as caught:
        policy_fields(*fields)
    assert str(caught.value) == error


int32s = st.integers(-(2**31), 2**31 - 1) | st.integers(-2, 100_002)
group_bys = st.lists(st.sampled_from([*GROUP_BY_FIELDS, "alert_id", "", "SOURCE"]), max_size=6)


@given(group_bys, int32s, int32s, int32s)
def test_a_policy_is_accepted_exactly_within_its_bounds_else_the_first_bad_field_is_named(
        group_by: Sequence[str], wait: int, interval: int, emails: int) -> None:
    bad = [field for field, ok in (
        ("group_by", set(group_by) <= set(GROUP_BY_FIELDS)), ("group_wait_seconds", 0 <= wait <= 3600),
        ("group_interval_seconds", 1 <= interval <= 86400), ("max_emails_per_hour", 0 <= emails <= 100_000),
    ) if not ok]
    try:
        policy = policy_fields(group_by, wait, interval, emails)
    except InvalidField as error:
        assert bad and error.field == bad[0]
    else:
        assert bad == []
        assert policy == Policy(tuple(sorted(set(group_by), key=GROUP_BY_FIELDS.index)), wait, interval,
                                None if emails == 0 else emails)
