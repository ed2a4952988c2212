"""sender: `notifications.ready` → by the tenant's policy, silenced, emailed alone, or put
in a digest → SENT.

Wiring only: routing and the schedulers are dispatch.py (decisions routing.py), sending
delivery.py, decisions outcomes.py, SQL store.py and digests.py, decoding notifications.py,
the emails email_message.py.
"""

from __future__ import annotations

import asyncio

from alerting.common import topics
from alerting.common.db import DatabaseRole, create_pool
from alerting.common.kafka import BatchWorker, worker_clients
from alerting.common.retry import retry_until_done
from alerting.common.service import Lifecycle, run_service
from alerting.sender.delivery import EmailSender, SenderSettings
from alerting.sender.dispatch import Dispatcher
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
            dispatcher = Dispatcher(settings, pool, EmailSender(settings, smtp))
            await retry_until_done(dispatcher.release_own_leases, settings, what="releasing leases",
                                   stop=lifecycle.stop)
            await send_until_stopped(lifecycle, dispatcher, BatchWorker(
                service="sender",
                settings=settings,
                consumer=consumer,
                producer=producer,
                decode=decode_notification_ready,
                handle=dispatcher.handle,
                stop=lifecycle.stop,
            ))
    finally:
        await smtp.close()
        await pool.close()


async def send_until_stopped(
    lifecycle: Lifecycle, dispatcher: Dispatcher, worker: BatchWorker[NotificationReady]
) -> None:
    """Consume `notifications.ready` until stopped, with the retry and digest schedulers beside."""
    schedulers = [asyncio.create_task(dispatcher.retry_due(lifecycle.stop)),
                  asyncio.create_task(dispatcher.send_due_digests(lifecycle.stop))]
    # A scheduler that ended would leave retries or digests waiting forever: unhealthy, not silent.
    lifecycle.ready = lambda: worker.ready() and not any(task.done() for task in schedulers)
    lifecycle.alive = lambda: not any(task.done() for task in schedulers)
    try:
        await worker.run()
    finally:
        lifecycle.stop.set()
        await asyncio.gather(*schedulers)


def main() -> None:
    run_service("sender", SenderSettings(), run)


if __name__ == "__main__":
    main()
