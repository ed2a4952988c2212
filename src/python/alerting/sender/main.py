"""sender: `notifications.ready` → the notification's row → email → SENT.

Wiring only: delivery is delivery.py (with the retry scheduler), its decisions
outcomes.py, its SQL store.py, decoding notifications.py, the email email_message.py.
"""

from __future__ import annotations

import asyncio

from alerting.common import topics
from alerting.common.db import DatabaseRole, create_pool
from alerting.common.kafka import BatchWorker, worker_clients
from alerting.common.retry import retry_until_done
from alerting.common.service import Lifecycle, run_service
from alerting.sender.delivery import EmailSender, SenderSettings
from alerting.sender.notifications import decode_notification_ready
from alerting.sender.smtp_pool import SmtpConnections
from alerting.v1.events_pb2 import NotificationReady


async def run(settings: SenderSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, DatabaseRole.DATA_PLANE, stop=lifecycle.stop)
    smtp = SmtpConnections(
        host=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_seconds,
        start_tls=settings.smtp_starttls, username=settings.smtp_username, password=settings.smtp_password,
    )
    try:
        async with worker_clients(settings, topics.SENDER_GROUP, topics.NOTIFICATIONS_READY, lifecycle.stop) as (
            consumer, producer  # the producer sends dead letters
        ):
            sender = EmailSender(settings, pool, smtp)
            await retry_until_done(sender.release_own_leases, settings, what="releasing leases", stop=lifecycle.stop)
            await send_until_stopped(lifecycle, sender, BatchWorker(
                service="sender",
                settings=settings,
                consumer=consumer,
                producer=producer,
                decode=decode_notification_ready,
                handle=sender.handle,
                stop=lifecycle.stop,
            ))
    finally:
        await smtp.close()
        await pool.close()


async def send_until_stopped(lifecycle: Lifecycle, sender: EmailSender, worker: BatchWorker[NotificationReady]) -> None:
    """Consume `notifications.ready` until stopped, with the retry scheduler running beside."""
    retries = asyncio.create_task(sender.retry_due(lifecycle.stop))
    # A retry scheduler that ended would leave retries waiting forever: unhealthy, not silent.
    lifecycle.ready = lambda: worker.ready() and not retries.done()
    lifecycle.alive = lambda: not retries.done()
    try:
        await worker.run()
    finally:
        lifecycle.stop.set()
        await retries


def main() -> None:
    run_service("sender", SenderSettings(), run)


if __name__ == "__main__":
    main()
