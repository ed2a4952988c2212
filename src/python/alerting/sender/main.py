"""sender: `notifications.ready` → by the tenant's policy, silenced, emailed alone, or put
in a digest → SENT. Wiring only: the Dispatcher (dispatch.py) and the modules beside it do
the work (docs/architecture/ARCHITECTURE.md lists them)."""

from __future__ import annotations

from alerting.common import topics
from alerting.common.db import DatabaseRole, create_pool
from alerting.common.kafka import Companion, Wiring, run_worker
from alerting.common.retry import retry_until_done
from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import SenderSettings, secret_value
from alerting.sender.delivery import EmailSender
from alerting.sender.dispatch import Dispatcher
from alerting.sender.notifications import decode_notification_ready
from alerting.sender.smtp_pool import SmtpConnections


async def run(settings: SenderSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, DatabaseRole.DATA_PLANE, stop=lifecycle.stop)
    smtp = SmtpConnections(host=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_seconds,
                           start_tls=settings.smtp_starttls, username=settings.smtp_username,
                           password=secret_value(settings.smtp_password))
    sender = EmailSender(settings, smtp)
    dispatcher = Dispatcher(settings, pool, sender)
    # Before retrying, the leases this instance held when it last died are freed.
    retrying = Companion(dispatcher.retry_due, start=lambda stop: retry_until_done(
        dispatcher.release_own_leases, settings, what="releasing leases", stop=stop))
    await run_worker(settings, lifecycle, topics.SENDER, decode_notification_ready, lambda _: Wiring(
        dispatcher.handle, [retrying, Companion(dispatcher.send_due_digests)]),
        closing=[sender.aclose, smtp.close, pool.close])


def main() -> None:
    run_service("sender", SenderSettings(), run)


if __name__ == "__main__":
    main()
