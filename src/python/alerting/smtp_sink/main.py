"""smtp-sink: a local SMTP server (aiosmtpd) that keeps every message it receives as a
.eml file, so a person can read what the platform sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import Counter

from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import SmtpSinkSettings
from alerting.smtp_sink import mailbox

log = logging.getLogger(__name__)
RECEIVED = Counter("alerting_smtp_sink_messages_total", "Messages the SMTP sink received.")


class MailboxHandler:
    """Keeps every message; answers a recipient or a message as told in `rcpt_replies` and
    `data_replies` instead; offers PIPELINING unless told not to."""

    def __init__(
        self,
        directory: Path,
        rcpt_replies: Mapping[str, str] | None = None,
        data_replies: Mapping[str, str] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.directory = directory
        self.pipelining = pipelining
        self.rcpt_replies = dict(rcpt_replies or {})
        self.data_replies = dict(data_replies or {})
        self.received = 0

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # aiosmtpd reads one command at a time, so it takes pipelined ones (RFC 2920) as they
        # come; it only does not say so.
        session.host_name = hostname
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            if address in self.data_replies:
                return self.data_replies[address]
        # A small file, no fsync: written inline, which is cheaper than a hop to a thread.
        raw = envelope.original_content or envelope.content or b""
        # As a delivering server does: the envelope's recipients in a Delivered-To header.
        delivered_to = f"Delivered-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        path = mailbox.store(self.directory, delivered_to + (raw.encode() if isinstance(raw, str) else raw))
        self.received += 1
        RECEIVED.inc()
        log.debug("mail from %s to %s kept as %s", envelope.mail_from, ", ".join(envelope.rcpt_tos), path.name)
        return "250 Message accepted for delivery"


async def start_sink(
    host: str, port: int, directory: Path, *, rcpt_replies: Mapping[str, str] | None = None,
    data_replies: Mapping[str, str] | None = None, smtputf8: bool = True, pipelining: bool = True,
) -> tuple[asyncio.Server, MailboxHandler]:
    handler = MailboxHandler(directory, rcpt_replies, data_replies, pipelining)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="alerting.local", enable_SMTPUTF8=smtputf8), host, port)
    return server, handler


async def run(settings: SmtpSinkSettings, lifecycle: Lifecycle) -> None:
    # aiosmtpd logs every SMTP command at INFO: a fifth of the sink's work under load.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    server, _ = await start_sink(
        settings.listen_host, settings.smtp_sink_port, settings.mail_dir,
        rcpt_replies=settings.smtp_sink_rcpt_replies, data_replies=settings.smtp_sink_data_replies,
        smtputf8=settings.smtp_sink_smtputf8,
    )
    log.info("SMTP sink on %s:%d keeping mail in %s", settings.listen_host, settings.smtp_sink_port, settings.mail_dir)
    lifecycle.ready = lambda: True
    try:
        await lifecycle.stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def main() -> None:
    run_service("smtp-sink", SmtpSinkSettings(), run)


if __name__ == "__main__":
    main()
