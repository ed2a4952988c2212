"""An SMTP server's answers to one attempt, as an Attempt (pure).

Per recipient, 2xx is SENT, 5xx FAILED and 4xx DEFERRED. A 5xx to the message itself
(content refused, too large) refuses it for good. A refused sender, a failed login, a
4xx to the message and a lost connection are failures of the attempt, tried again: they
say nothing final about this notification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alerting.sender.notify.smtp import MessageRefused, RecipientsRefused, Reply
from alerting.sender.outcomes import Attempt, RecipientOutcome, RecipientStatus


def recipient_outcome(email: str, reply: Reply) -> RecipientOutcome:
    status = (RecipientStatus.SENT if reply.code < 400 else
              RecipientStatus.DEFERRED if reply.code < 500 else RecipientStatus.FAILED)
    return RecipientOutcome(email, status, str(reply))


def accepted(addressed: Sequence[str], refused: Mapping[str, Reply], reply: Reply) -> Attempt:
    """The message went through for at least one recipient; `refused` holds the others."""
    return Attempt(recipients=[
        recipient_outcome(email, refused[email]) if email in refused else RecipientOutcome(
            email, RecipientStatus.SENT, str(reply))
        for email in addressed
    ])


def failed(error: BaseException) -> Attempt:
    """The attempt raised `error`: refusals of every recipient, of the message, or a failure."""
    if isinstance(error, RecipientsRefused):
        return Attempt(recipients=[recipient_outcome(email, reply) for email, reply in error.refused.items()])
    if isinstance(error, MessageRefused) and error.reply.code >= 500:
        return Attempt(rejected=str(error.reply))
    return Attempt(error=f"{type(error).__name__}: {error}")
