"""smtp-sink: a local SMTP server (aiosmtpd) that keeps every message it receives as a
.eml file, so a person can read what the platform sent."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import Counter

from alerting.common import ports
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import Settings
from alerting.smtp_sink import mailbox

log = logging.getLogger("smtp_sink")
RECEIVED = Counter("alerting_smtp_sink_messages_total", "Messages the SMTP sink received.")


class SinkSettings(Settings):
    mail_dir: Path = Path(".local/mail")
    smtp_sink_port: int = ports.SMTP_SINK_PORT


class MailboxHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.received = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # A small file, no fsync: written inline, which is cheaper than a hop to a thread.
        raw = envelope.original_content or envelope.content or b""
        path = mailbox.store(self.directory, raw.encode() if isinstance(raw, str) else raw)
        self.received += 1
        RECEIVED.inc()
        log.debug("mail from %s to %s kept as %s", envelope.mail_from, ", ".join(envelope.rcpt_tos), path.name)
        return "250 Message accepted for delivery"


async def start_sink(host: str, port: int, directory: Path) -> tuple[asyncio.Server, MailboxHandler]:
    handler = MailboxHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="alerting.local"), host, port)
    return server, handler


async def run(settings: SinkSettings, lifecycle: Lifecycle) -> None:
    # aiosmtpd logs every SMTP command at INFO: a fifth of the sink's work under load.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    server, _ = await start_sink(settings.listen_host, settings.smtp_sink_port, settings.mail_dir)
    log.info("SMTP sink on %s:%d keeping mail in %s", settings.listen_host, settings.smtp_sink_port, settings.mail_dir)
    lifecycle.healthy = lambda: True
    try:
        await lifecycle.stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def main() -> None:
    run_service("smtp-sink", SinkSettings(), run)


if __name__ == "__main__":
    main()
