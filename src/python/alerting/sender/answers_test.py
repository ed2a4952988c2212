import aiosmtplib

from alerting.sender.answers import accepted, failed
from alerting.sender.outcomes import Attempt, RecipientOutcome, RecipientStatus

SENT, FAILED, DEFERRED = RecipientStatus.SENT, RecipientStatus.FAILED, RecipientStatus.DEFERRED


def refused(recipient: str, code: int) -> aiosmtplib.SMTPRecipientRefused:
    return aiosmtplib.SMTPRecipientRefused(code, "no such user", recipient)


def test_a_partial_refusal_is_recorded_per_recipient() -> None:
    answer = accepted(["a@x.io", "b@x.io", "c@x.io"],
                      {"b@x.io": aiosmtplib.SMTPResponse(550, "no such user"),
                       "c@x.io": aiosmtplib.SMTPResponse(452, "mailbox full")}, "250 queued as 7")
    assert answer == Attempt(recipients=[RecipientOutcome("a@x.io", SENT, "250 queued as 7"),
                                         RecipientOutcome("b@x.io", FAILED, "550 no such user"),
                                         RecipientOutcome("c@x.io", DEFERRED, "452 mailbox full")])


def test_every_recipient_refused_is_per_recipient_too() -> None:
    error = aiosmtplib.SMTPRecipientsRefused([refused("a@x.io", 550), refused("b@x.io", 451)])
    assert failed(error) == Attempt(recipients=[RecipientOutcome("a@x.io", FAILED, "550 no such user"),
                                                RecipientOutcome("b@x.io", DEFERRED, "451 no such user")])


def test_a_refused_message_is_for_good_only_with_5xx() -> None:
    assert failed(aiosmtplib.SMTPDataError(554, "content rejected")) == Attempt(rejected="554 content rejected")
    assert failed(aiosmtplib.SMTPDataError(452, "try later")) == Attempt(error="SMTPDataError: 452 try later")


def test_configuration_and_connection_errors_are_failures_of_the_attempt() -> None:
    assert failed(aiosmtplib.SMTPSenderRefused(553, "sender not allowed", "alerts@x.io")).error == (
        "SMTPSenderRefused: 553 sender not allowed")
    assert failed(aiosmtplib.SMTPAuthenticationError(535, "bad credentials")).error == (
        "SMTPAuthenticationError: 535 bad credentials")
    assert failed(aiosmtplib.SMTPServerDisconnected("gone")).error == "SMTPServerDisconnected: gone"
    assert failed(ConnectionRefusedError(111, "refused")).error == "ConnectionRefusedError: [Errno 111] refused"
