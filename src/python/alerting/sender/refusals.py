"""Which SMTP errors refuse one email for good (pure).

A 5xx answer to a recipient (no such mailbox) or to the message itself (content refused,
too large) will not change on retry: that notification becomes FAILED with the server's
reason, so it cannot stall the others. Anything else is retried: 4xx answers are
temporary by definition, and a refused sender or a failed login is a configuration
problem of every email, to fix, not to fail every notification over.
"""

from __future__ import annotations

import aiosmtplib


def permanent_refusal(error: BaseException) -> str | None:
    """The reason to record when `error` refuses the email for good, else None."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        refusals = error.recipients
        if refusals and all(refusal.code >= 500 for refusal in refusals):
            return "; ".join(f"{refusal.recipient}: {refusal.code} {refusal.message}" for refusal in refusals)
        return None
    if isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError) and error.code >= 500:
        return f"{error.code} {error.message}"
    return None
