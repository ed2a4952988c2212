from alerting.sender.answers import accepted, failed
from alerting.sender.notify.smtp import (
    Disconnected,
    MessageRefused,
    RecipientsRefused,
    Reply,
    SenderRefused,
    UnexpectedReply,
)
from alerting.sender.outcomes import Attempt, RecipientOutcome, RecipientStatus

SENT, FAILED, DEFERRED = RecipientStatus.SENT, RecipientStatus.FAILED, RecipientStatus.DEFERRED


def test_a_partial_refusal_is_recorded_per_recipient() -> None:
    answer = accepted(["a@x.io", "b@x.io", "c@x.io"],
                      {"b@x.io": Reply(550, "no such user"), "c@x.io": Reply(452, "mailbox full")},
                      Reply(250, "queued as 7"))
    assert answer == Attempt(recipients=[RecipientOutcome("a@x.io", SENT, "250 queued as 7"),
                                         RecipientOutcome("b@x.io", FAILED, "550 no such user"),
                                         RecipientOutcome("c@x.io", DEFERRED, "452 mailbox full")])


def test_every_recipient_refused_is_per_recipient_too() -> None:
    error = RecipientsRefused({"a@x.io": Reply(550, "no such user"), "b@x.io": Reply(451, "no such user")})
    assert failed(error) == Attempt(recipients=[RecipientOutcome("a@x.io", FAILED, "550 no such user"),
                                                RecipientOutcome("b@x.io", DEFERRED, "451 no such user")])


def test_a_refused_message_is_for_good_only_with_5xx() -> None:
    assert failed(MessageRefused("the message", Reply(554, "content rejected"))) == Attempt(
        rejected="554 content rejected")
    assert failed(MessageRefused("DATA", Reply(452, "try later"))) == Attempt(
        error="MessageRefused: DATA: 452 try later")


def test_configuration_and_connection_errors_are_failures_of_the_attempt() -> None:
    assert failed(SenderRefused("MAIL", Reply(553, "sender not allowed"))).error == (
        "SenderRefused: MAIL: 553 sender not allowed")
    assert failed(UnexpectedReply("AUTH", Reply(535, "bad credentials"))).error == (
        "UnexpectedReply: AUTH: 535 bad credentials")
    assert failed(Disconnected("the server closed the connection")).error == (
        "Disconnected: the server closed the connection")
    assert failed(ConnectionRefusedError(111, "refused")).error == "ConnectionRefusedError: [Errno 111] refused"
