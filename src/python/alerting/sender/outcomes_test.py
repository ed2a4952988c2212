import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerting.sender.outcomes import (
    Attempt,
    Decision,
    RecipientOutcome,
    RecipientStatus,
    RetryPolicy,
    Status,
    decide,
    open_recipients,
    receiver_outcome,
)

SENT, FAILED, DEFERRED = RecipientStatus.SENT, RecipientStatus.FAILED, RecipientStatus.DEFERRED
CREATED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(initial_seconds=10, max_seconds=100, max_age=timedelta(hours=1))


def decided(attempt: Attempt, addressed: list[str], attempts: int = 1, age: timedelta = timedelta(minutes=1),
            done: dict[str, RecipientStatus] | None = None) -> Decision:
    return decide(attempt, addressed=addressed, done=done or {}, attempts=attempts, age_from=CREATED,
                  now=CREATED + age, policy=POLICY, rng=random.Random(1))


def test_every_recipient_accepting_is_sent() -> None:
    outcomes = [RecipientOutcome("a@x.io", SENT, "250 ok"), RecipientOutcome("b@x.io", SENT, "250 ok")]
    assert decided(Attempt(recipients=outcomes), ["a@x.io", "b@x.io"]) == Decision(Status.SENT, outcomes)


def test_a_temporary_refusal_is_tried_again_for_that_recipient_only() -> None:
    outcomes = [RecipientOutcome("a@x.io", SENT, "250 ok"), RecipientOutcome("b@x.io", DEFERRED, "451 later")]
    decision = decided(Attempt(recipients=outcomes), ["a@x.io", "b@x.io"])
    assert (decision.status, decision.recipients, decision.last_error) == (
        Status.PENDING, outcomes, "b@x.io: 451 later")
    assert decision.next_attempt_at is not None
    assert open_recipients(["a@x.io", "b@x.io"], {o.email: o.status for o in outcomes}) == ["b@x.io"]


def test_a_permanent_refusal_of_everyone_fails_with_the_answers() -> None:
    outcomes = [RecipientOutcome("a@x.io", FAILED, "550 no such user")]
    assert decided(Attempt(recipients=outcomes), ["a@x.io"]) == Decision(
        Status.FAILED, outcomes, failure="a@x.io: 550 no such user")


def test_a_partial_permanent_refusal_is_sent_with_the_refusal_recorded() -> None:
    outcomes = [RecipientOutcome("b@x.io", FAILED, "550 no such user")]
    assert decided(Attempt(recipients=outcomes), ["b@x.io"], done={"a@x.io": SENT}) == Decision(Status.SENT, outcomes)


def test_a_rejected_message_fails_every_open_recipient() -> None:
    decision = decided(Attempt(rejected="554 content rejected"), ["a@x.io", "b@x.io"])
    assert decision == Decision(Status.FAILED, [RecipientOutcome("a@x.io", FAILED, "554 content rejected"),
                                                RecipientOutcome("b@x.io", FAILED, "554 content rejected")],
                                failure="554 content rejected")


def test_failed_attempts_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    delays = [decided(Attempt(error="timeout"), ["a@x.io"], attempts=n).next_attempt_at for n in (1, 2, 3, 10)]
    seconds = [(at - CREATED - timedelta(minutes=1)).total_seconds() for at in delays if at is not None]
    assert len(seconds) == 4
    for value, ceiling in zip(seconds, (10, 20, 40, 100), strict=True):
        assert ceiling / 2 <= value <= ceiling


def test_past_the_maximum_age_it_fails_with_the_last_error() -> None:
    decision = decided(Attempt(error="ConnectionRefusedError: refused"), ["a@x.io"], attempts=7,
                       age=timedelta(hours=2))
    assert decision.status == Status.FAILED
    assert decision.failure == "undeliverable for 1:00:00 (7 attempts); last error: ConnectionRefusedError: refused"
    deferred = decided(Attempt(recipients=[RecipientOutcome("a@x.io", DEFERRED, "451 later")]), ["a@x.io"],
                       age=timedelta(hours=2))
    assert deferred.status == Status.FAILED
    assert [o.status for o in deferred.recipients] == [FAILED]


TEAM = "receiver:5f0c2a4e-0000-4000-8000-000000000001"


def test_an_email_receiver_is_sent_when_its_addresses_took_the_email_the_refusals_named() -> None:
    answered = [RecipientOutcome("a@x.io", SENT, "250 ok"), RecipientOutcome("b@x.io", FAILED, "550 no such user")]
    assert receiver_outcome(TEAM, Attempt(recipients=answered)) == RecipientOutcome(
        TEAM, SENT, "a@x.io: 250 ok; b@x.io: 550 no such user")
    assert receiver_outcome(TEAM, Attempt(rejected="554 spam")) == RecipientOutcome(TEAM, FAILED, "554 spam")
    assert receiver_outcome(TEAM, Attempt(error="timed out")) == RecipientOutcome(TEAM, DEFERRED, "timed out")


@given(st.lists(st.sampled_from(list(RecipientStatus)), min_size=1, max_size=6))
def test_an_email_receiver_waits_while_any_address_does_and_fails_only_when_none_took_it(
    statuses: list[RecipientStatus]
) -> None:
    answered = [RecipientOutcome(f"{n}@x.io", status, f"answer {n}") for n, status in enumerate(statuses)]
    outcome = receiver_outcome(TEAM, Attempt(recipients=answered))
    expected = DEFERRED if DEFERRED in statuses else SENT if SENT in statuses else FAILED
    assert (outcome.email, outcome.status) == (TEAM, expected)
    named = answered if expected == SENT else [o for o in answered if o.status == expected]
    assert outcome.response == "; ".join(f"{o.email}: {o.response}" for o in named)
