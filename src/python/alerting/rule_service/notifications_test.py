"""The NotificationService against the real database, and a retried notification sent by
a running sender."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

import alerting.sender.main
from alerting.producer.alerts import build_alert
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.services import fetch, free_port, immediate_sender, rule_service, running, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import notification_service_pb2 as api
from alerting.v1 import notification_service_pb2_grpc

FAILED, SENT, PENDING = api.NOTIFICATION_STATUS_FAILED, api.NOTIFICATION_STATUS_SENT, api.NOTIFICATION_STATUS_PENDING


@asynccontextmanager
async def notification_stub(
    settings: StackSettings,
) -> AsyncIterator[notification_service_pb2_grpc.NotificationServiceAsyncStub]:
    async with rule_service(settings) as service, service.channel() as channel:
        yield notification_service_pb2_grpc.NotificationServiceStub(channel)


async def insert(
    settings: StackSettings, client_id: str, status: str, emails: list[str], failure: str | None = None,
) -> str:
    [row] = await fetch(
        settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status, failure, attempts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 = 'PENDING' THEN 0 ELSE 1 END)"
        " RETURNING notification_id::text",
        client_id, uuid.uuid4().hex, [str(uuid.uuid4())], emails,
        build_alert("HIGH", "db", "disk").SerializeToString(), status, failure)
    return str(row["notification_id"])


async def code_of(call: asyncio.Future[object] | object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


async def test_list_by_tenant_and_status_page_by_page_and_show_one_with_recipients(
    stack_settings: StackSettings,
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    refused = "a@x.io: 550 no such user"
    failed = [await insert(stack_settings, tenant, "FAILED", ["a@x.io"], refused) for _ in range(3)]
    sent = await insert(stack_settings, tenant, "SENT", ["a@x.io", "b@x.io"])
    await insert(stack_settings, other, "FAILED", ["c@x.io"], "c@x.io: 550 no such user")
    await fetch(stack_settings,
                "INSERT INTO notification_recipients (notification_id, email, status, response, attempts)"
                " VALUES ($1, 'a@x.io', 'SENT', '250 ok', 1), ($1, 'b@x.io', 'FAILED', '550 gone', 2)", sent)
    async with notification_stub(stack_settings) as stub:
        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListNotifications(api.ListNotificationsRequest(
                client_id=tenant, status=FAILED, page_size=2, page_token=token))
            seen += [n.notification_id for n in page.notifications]
            assert all(n.client_id == tenant and n.status == FAILED for n in page.notifications)
            token = page.next_page_token
            if not token:
                break
        assert sorted(seen) == sorted(failed)
        everything = await stub.ListNotifications(api.ListNotificationsRequest(client_id=tenant))
        assert len(everything.notifications) == 4
        shown = await stub.GetNotification(api.GetNotificationRequest(notification_id=sent))
        assert (shown.status, shown.alert.name) == (SENT, "disk")
        assert [(r.email, r.status, r.response, r.attempts) for r in shown.recipients] == [
            ("a@x.io", api.RECIPIENT_STATUS_SENT, "250 ok", 1), ("b@x.io", api.RECIPIENT_STATUS_FAILED, "550 gone", 2)]
        assert await code_of(stub.GetNotification(api.GetNotificationRequest(notification_id=str(uuid.uuid4())))) == (
            grpc.StatusCode.NOT_FOUND)
        assert await code_of(stub.GetNotification(api.GetNotificationRequest(notification_id="nope"))) == (
            grpc.StatusCode.INVALID_ARGUMENT)
        assert await code_of(stub.RetryNotification(api.RetryNotificationRequest(notification_id=sent))) == (
            grpc.StatusCode.FAILED_PRECONDITION)


async def test_a_retried_failed_notification_is_sent(stack_settings: StackSettings, tmp_path: Path) -> None:
    port = free_port()
    full = {"a@x.io": "552 5.2.2 mailbox full", "b@x.io": "552 5.2.2 mailbox full"}
    sink, handler = await start_sink("127.0.0.1", port, tmp_path, rcpt_replies=full)
    notification = await insert(stack_settings, str(uuid.uuid4()), "PENDING", list(full))
    await fetch(stack_settings, "UPDATE notifications SET attempts = 1 WHERE notification_id = $1",
                notification)  # as after an attempt: the retry scheduler's
    sender_settings = immediate_sender(stack_settings, smtp_port=port, retry_poll_seconds=0.1)
    try:
        async with notification_stub(stack_settings) as stub, running(alerting.sender.main.run, sender_settings):
            await wait_until(lambda: has_status(stub, notification, FAILED), 30, "FAILED: every mailbox is full")
            failed = await stub.GetNotification(api.GetNotificationRequest(notification_id=notification))
            assert failed.failure == "a@x.io: 552 5.2.2 mailbox full; b@x.io: 552 5.2.2 mailbox full"
            handler.rcpt_replies.clear()  # the mailboxes have room again
            retried = await stub.RetryNotification(api.RetryNotificationRequest(notification_id=notification))
            assert (retried.status, list(retried.recipients)) == (PENDING, [])
            await wait_until(lambda: has_status(stub, notification, SENT), 30, "SENT after the retry")
            final = await stub.GetNotification(api.GetNotificationRequest(notification_id=notification))
    finally:
        sink.close()
    assert {r.email: r.status for r in final.recipients} == {
        "a@x.io": api.RECIPIENT_STATUS_SENT, "b@x.io": api.RECIPIENT_STATUS_SENT}
    assert [mail["Delivered-To"] for mail in mailbox.read_all(tmp_path)] == ["a@x.io, b@x.io"]


async def has_status(
    stub: notification_service_pb2_grpc.NotificationServiceAsyncStub, notification_id: str, status: int
) -> bool:
    return (await stub.GetNotification(api.GetNotificationRequest(notification_id=notification_id))).status == status
