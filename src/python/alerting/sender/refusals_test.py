import aiosmtplib

from alerting.sender.refusals import permanent_refusal


def refused(recipient: str, code: int) -> aiosmtplib.SMTPRecipientRefused:
    return aiosmtplib.SMTPRecipientRefused(code, "no such user", recipient)


def test_every_recipient_refused_with_5xx_is_for_good() -> None:
    error = aiosmtplib.SMTPRecipientsRefused([refused("a@x.io", 550), refused("b@x.io", 551)])
    assert permanent_refusal(error) == "a@x.io: 550 no such user; b@x.io: 551 no such user"


def test_a_temporary_refusal_among_them_is_retried() -> None:
    error = aiosmtplib.SMTPRecipientsRefused([refused("a@x.io", 550), refused("b@x.io", 451)])
    assert permanent_refusal(error) is None


def test_a_refused_message_is_for_good_only_with_5xx() -> None:
    assert permanent_refusal(aiosmtplib.SMTPDataError(554, "content rejected")) == "554 content rejected"
    assert permanent_refusal(aiosmtplib.SMTPDataError(452, "mailbox full, try later")) is None


def test_configuration_and_connection_errors_are_retried() -> None:
    assert permanent_refusal(aiosmtplib.SMTPSenderRefused(553, "sender not allowed", "alerts@x.io")) is None
    assert permanent_refusal(aiosmtplib.SMTPAuthenticationError(535, "bad credentials")) is None
    assert permanent_refusal(aiosmtplib.SMTPServerDisconnected("gone")) is None
