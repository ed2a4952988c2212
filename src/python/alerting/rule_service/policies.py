"""The gRPC NotificationPolicyService: each client's notification policy in
`notification_policies`, or the platform's default where it has none.

A service of its own, not RuleService: rules (and grants) travel to the evaluators through
the outbox and `rule.changed`, while a policy shapes delivery only and the sender reads it
from Postgres, so a policy change writes no outbox row. An admin acts on any client, a
tenant on its own; another client's id is NOT_FOUND, like one that does not exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import asyncpg

from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import NotFound, StaleVersion, grpc_errors
from alerting.rules.policies import Policy, policy_fields
from alerting.v1 import notification_policy_service_pb2 as api
from alerting.v1 import notification_policy_service_pb2_grpc

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context

FIELDS = ("group_by", "group_wait_seconds", "group_interval_seconds", "max_emails_per_hour", "version", "created_at",
          "updated_at", "updated_by")
COLUMNS = ", ".join(("client_id", *FIELDS))
# The client, with its policy's fields (NULL where it has none of its own).
GET = (f"SELECT c.client_id, {', '.join(f'p.{field}' for field in FIELDS)} FROM clients AS c"
       " LEFT JOIN notification_policies AS p ON p.client_id = c.client_id WHERE c.client_id = $1")
# The client, with its policy's version (NULL: none of its own): why a write matched nothing.
CURRENT_VERSION = ("SELECT (SELECT version FROM notification_policies AS p WHERE p.client_id = c.client_id)"
                   " AS version FROM clients AS c WHERE c.client_id = $1")


def policy_message(row: asyncpg.Record) -> api.NotificationPolicy:
    policy = api.NotificationPolicy(
        client_id=str(row["client_id"]), group_by=list(row["group_by"]), group_wait_seconds=row["group_wait_seconds"],
        group_interval_seconds=row["group_interval_seconds"], max_emails_per_hour=row["max_emails_per_hour"] or 0,
        version=row["version"], updated_by=row["updated_by"])
    policy.created_at.FromDatetime(row["created_at"])
    policy.updated_at.FromDatetime(row["updated_at"])
    return policy


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
        row = await self.pool.fetchrow(GET, client_id)
        if row is None:
            raise NotFound(f"client_id: no client {client_id}")
        return default_message(client_id, self.default) if row["version"] is None else policy_message(row)

    @grpc_errors
    async def SetNotificationPolicy(self, request: api.SetNotificationPolicyRequest, context: Context
                                    ) -> api.NotificationPolicy:
        client_id = visible_client_id(request.client_id)
        policy = policy_fields(list(request.group_by), request.group_wait_seconds, request.group_interval_seconds,
                               request.max_emails_per_hour)
        version = validation.expected_version(request.expected_version, required=False)
        fields = (list(policy.group_by), policy.group_wait_seconds, policy.group_interval_seconds,
                  policy.max_emails_per_hour, caller().key_id)
        async with self.pool.acquire() as connection, connection.transaction():
            if version == 0:  # none stored yet: the first of the client's own
                if await connection.fetchval(
                        "SELECT 1 FROM clients WHERE client_id = $1 FOR KEY SHARE", client_id) is None:
                    raise NotFound(f"client_id: no client {client_id}")
                row = await connection.fetchrow(
                    f"INSERT INTO notification_policies (client_id, group_by, group_wait_seconds,"
                    f" group_interval_seconds, max_emails_per_hour, updated_by) VALUES ($1, $2, $3, $4, $5, $6)"
                    f" ON CONFLICT (client_id) DO NOTHING RETURNING {COLUMNS}", client_id, *fields)
            else:
                row = await connection.fetchrow(
                    f"UPDATE notification_policies SET group_by = $2, group_wait_seconds = $3,"
                    f" group_interval_seconds = $4, max_emails_per_hour = $5, updated_by = $6,"
                    f" version = version + 1, updated_at = now() WHERE client_id = $1 AND version = $7"
                    f" RETURNING {COLUMNS}", client_id, *fields, version)
            if row is None:
                await self._explain_missed_write(connection, client_id, version)
        return policy_message(row)

    @grpc_errors
    async def DeleteNotificationPolicy(self, request: api.DeleteNotificationPolicyRequest, context: Context
                                       ) -> api.DeleteNotificationPolicyResponse:
        client_id = visible_client_id(request.client_id)
        version = validation.expected_version(request.expected_version, required=False)
        async with self.pool.acquire() as connection, connection.transaction():
            deleted = await connection.fetchval(
                "DELETE FROM notification_policies WHERE client_id = $1 AND ($2 = 0 OR version = $2)"
                " RETURNING version", client_id, version)
            if deleted is None:
                await self._explain_missed_write(connection, client_id, version)
        return api.DeleteNotificationPolicyResponse()

    @staticmethod
    async def _explain_missed_write(connection: asyncpg.Connection, client_id: str, version: int) -> NoReturn:
        """A conditional write matched nothing: say whether the client is missing, has no
        policy of its own to delete, or has another version than the one expected."""
        current = await connection.fetchrow(CURRENT_VERSION, client_id)
        if current is None:
            raise NotFound(f"client_id: no client {client_id}")
        if current["version"] is None and version == 0:
            raise NotFound(f"client_id: client {client_id} has no notification policy of its own")
        raise StaleVersion(f"expected_version: is {version}, the current version is {current['version'] or 0}")
