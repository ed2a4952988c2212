"""The gRPC NotificationService: notifications by tenant, status and digest, each with its
recipients' outcomes and the email that delivered it, and a retry of a FAILED one. The SQL
is store/notifications.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from alerting.common.validation import InvalidField, canonical_uuid
from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import grpc_errors
from alerting.rule_service.store import notifications as notification_store
from alerting.v1 import notification_service_pb2 as api
from alerting.v1 import notification_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context


class NotificationService(notification_service_pb2_grpc.NotificationServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @grpc_errors
    async def ListNotifications(
        self, request: api.ListNotificationsRequest, context: Context
    ) -> api.ListNotificationsResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        if request.status not in (api.NOTIFICATION_STATUS_UNSPECIFIED, *notification_store.STATUSES):
            raise InvalidField("status", f"unknown value {request.status}")
        size = validation.page_size(request.page_size)
        after = validation.decode_cursor(request.page_token)
        digest_id = canonical_uuid(request.digest_id, "digest_id") if request.digest_id else None
        notifications, last = await notification_store.list_page(
            self.pool, client_id, notification_store.STATUSES.get(request.status), digest_id, after, size)
        return api.ListNotificationsResponse(notifications=notifications,
                                             next_page_token=validation.encode_cursor(*last) if last else "")

    @grpc_errors
    async def GetNotification(self, request: api.GetNotificationRequest, context: Context) -> api.Notification:
        notification_id = canonical_uuid(request.notification_id, "notification_id")
        return await notification_store.get(self.pool, notification_id, caller().visible_client())

    @grpc_errors
    async def RetryNotification(self, request: api.RetryNotificationRequest, context: Context) -> api.Notification:
        notification_id = canonical_uuid(request.notification_id, "notification_id")
        return await notification_store.retry(self.pool, notification_id, caller().visible_client())
