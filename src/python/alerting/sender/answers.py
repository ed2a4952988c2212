"""An SMTP server's answers to one attempt, as an Attempt (pure).

Per recipient, 2xx is SENT, 5xx FAILED and 4xx DEFERRED. A 5xx to the message itself
(content refused, too large) refuses it for good. A refused sender, a failed login, a
4xx to the message and a lost connection are failures of the attempt, tried again: they
say nothing final about this notification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aiosmtplib

from alerting.sender.outcomes import Attempt, RecipientOutcome, RecipientStatus


def recipient_outcome(email: str, code: int, message: str) -> RecipientOutcome:
    status = (RecipientStatus.SENT if code < 400 else
              RecipientStatus.DEFERRED if code < 500 else RecipientStatus.FAILED)
    return RecipientOutcome(email, status, f"{code} {message}".strip())


def accepted(addressed: Sequence[str], refused: Mapping[str, aiosmtplib.SMTPResponse], response: str) -> Attempt:
    """The message went through for at least one recipient; `refused` holds the others."""
    return Attempt(recipients=[
        recipient_outcome(email, refused[email].code, refused[email].message) if email in refused
        else RecipientOutcome(email, RecipientStatus.SENT, response)
        for email in addressed
    ])


def failed(error: BaseException) -> Attempt:
    """The attempt raised `error`: refusals of every recipient, of the message, or a failure."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return Attempt(recipients=[recipient_outcome(r.recipient, r.code, r.message) for r in error.recipients])
    if isinstance(error, aiosmtplib.SMTPRecipientRefused):
        return Attempt(recipients=[recipient_outcome(error.recipient, error.code, error.message)])
    if isinstance(error, aiosmtplib.SMTPDataError) and error.code >= 500:
        return Attempt(rejected=f"{error.code} {error.message}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return Attempt(error=f"{type(error).__name__}: {error.code} {error.message}")
    return Attempt(error=f"{type(error).__name__}: {error}")
