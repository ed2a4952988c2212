"""sender: `notifications.ready` → the notification's row → email → SENT.

Wiring only: the durable step is delivery.py, its SQL store.py, decoding
notifications.py, the email email_message.py.
"""

from __future__ import annotations

from alerting.common import topics
from alerting.common.db import create_pool
from alerting.common.kafka import BatchWorker, make_consumer, make_producer, start_clients
from alerting.common.service import Lifecycle, run_service
from alerting.sender.delivery import EmailSender, SenderSettings
from alerting.sender.notifications import decode_notification_ready
from alerting.sender.smtp_pool import SmtpConnections

GROUP = "sender"


async def run(settings: SenderSettings, lifecycle: Lifecycle) -> None:
    pool = await create_pool(settings, stop=lifecycle.stop)
    consumer = make_consumer(settings, GROUP, topics.NOTIFICATIONS_READY)
    producer = make_producer(settings)  # dead letters
    smtp = SmtpConnections(
        host=settings.smtp_host, port=settings.smtp_port, timeout=settings.smtp_timeout_seconds,
        start_tls=settings.smtp_starttls, username=settings.smtp_username, password=settings.smtp_password,
    )
    await start_clients(settings, producer, consumer, stop=lifecycle.stop)
    try:
        worker = BatchWorker(
            service="sender",
            settings=settings,
            consumer=consumer,
            producer=producer,
            decode=decode_notification_ready,
            handle=EmailSender(settings, pool, smtp).handle,
            stop=lifecycle.stop,
        )
        lifecycle.healthy = lambda: worker.last_batch_ok
        await worker.run()
    finally:
        await consumer.stop()
        await producer.stop()
        await smtp.close()
        await pool.close()


def main() -> None:
    run_service("sender", SenderSettings(), run)


if __name__ == "__main__":
    main()
