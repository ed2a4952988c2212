"""The gRPC NotificationPolicyService: each client's notification policy in
`notification_policies`, or the platform's default where it has none.

A service of its own, not RuleService: rules (and grants) travel to the evaluators through
the outbox and `rule.changed`, while a policy shapes delivery only and the sender reads it
from Postgres, so a policy change writes no outbox row. An admin acts on any client, a
tenant on its own; another client's id is NOT_FOUND, like one that does not exist. The SQL
is store/policies.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import grpc_errors
from alerting.rule_service.store import policies as policy_store
from alerting.rules.policies import Policy, policy_fields
from alerting.v1 import notification_policy_service_pb2 as api
from alerting.v1 import notification_policy_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context


def default_message(client_id: str, default: Policy) -> api.NotificationPolicy:
    """The platform's default policy, as the policy of a client without one of its own."""
    return api.NotificationPolicy(
        client_id=client_id, group_by=list(default.group_by), group_wait_seconds=default.group_wait_seconds,
        group_interval_seconds=default.group_interval_seconds, max_emails_per_hour=0, version=0, is_default=True)


class NotificationPolicyService(notification_policy_service_pb2_grpc.NotificationPolicyServiceServicer):
    def __init__(self, pool: asyncpg.Pool, default: Policy) -> None:
        self.pool = pool
        self.default = default  # the platform's, as the sender delivers by it

    @grpc_errors
    async def GetNotificationPolicy(self, request: api.GetNotificationPolicyRequest, context: Context
                                    ) -> api.NotificationPolicy:
        client_id = visible_client_id(request.client_id)
        own = await policy_store.get(self.pool, client_id)
        return default_message(client_id, self.default) if own is None else own

    @grpc_errors
    async def SetNotificationPolicy(self, request: api.SetNotificationPolicyRequest, context: Context
                                    ) -> api.NotificationPolicy:
        client_id = visible_client_id(request.client_id)
        policy = policy_fields(list(request.group_by), request.group_wait_seconds, request.group_interval_seconds,
                               request.max_emails_per_hour)
        version = validation.expected_version(request.expected_version, required=False)
        return await policy_store.save(self.pool, client_id, policy, version, caller().key_id)

    @grpc_errors
    async def DeleteNotificationPolicy(self, request: api.DeleteNotificationPolicyRequest, context: Context
                                       ) -> api.DeleteNotificationPolicyResponse:
        client_id = visible_client_id(request.client_id)
        version = validation.expected_version(request.expected_version, required=False)
        await policy_store.delete(self.pool, client_id, version)
        return api.DeleteNotificationPolicyResponse()
