"""The gRPC RuleService: clients, rules and source grants in Postgres, every change of a rule
or a grant into the outbox.

Every call has a caller (auth.py): an admin sees every client, a tenant only its own; ids
the caller may not see are NOT_FOUND, like ids that do not exist. Only an admin grants and
revokes sources: a tenant that could grant itself sources could read anyone's alerts.
The methods validate, authorize and call the stores (store/clients.py, rules.py, grants.py),
which hold the SQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

from alerting.common.settings import DEFAULT_MAX_RECIPIENTS_PER_CLIENT
from alerting.common.validation import canonical_uuid
from alerting.rule_service import validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import grpc_errors
from alerting.rule_service.store import clients as client_store
from alerting.rule_service.store import grants as grant_store
from alerting.rule_service.store import rules as rule_store
from alerting.rules.validation import granted_source, rule_fields
from alerting.v1 import rule_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context


class RuleService(rule_service_pb2_grpc.RuleServiceServicer):
    def __init__(self, pool: asyncpg.Pool, on_change: Callable[[], None], max_rules_per_client: int,
                 max_recipients_per_client: int = DEFAULT_MAX_RECIPIENTS_PER_CLIENT) -> None:
        self.pool = pool
        self.on_change = on_change  # wakes the outbox relay after a commit
        self.max_rules_per_client = max_rules_per_client
        self.max_recipients_per_client = max_recipients_per_client

    # ------------------------------------------------------------------ clients
    @grpc_errors
    async def CreateClient(self, request: api.CreateClientRequest, context: Context) -> rule_pb2.Client:
        who = caller()
        who.require_admin("creating a client")
        return await client_store.create(self.pool, validation.client_name(request.name), who.key_id)

    @grpc_errors
    async def GetClient(self, request: api.GetClientRequest, context: Context) -> rule_pb2.Client:
        return await client_store.get(self.pool, visible_client_id(request.client_id))

    @grpc_errors
    async def ListClients(self, request: api.ListClientsRequest, context: Context) -> api.ListClientsResponse:
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token)
        clients, last = await client_store.list_page(self.pool, caller().visible_client(), after, size)
        return api.ListClientsResponse(clients=clients,
                                       next_page_token=validation.encode_page_token(last) if last else "")

    @grpc_errors
    async def UpdateClient(self, request: api.UpdateClientRequest, context: Context) -> rule_pb2.Client:
        client_id = visible_client_id(request.client_id)
        caller().require_admin("changing a client")
        name = validation.client_name(request.name)
        version = validation.expected_version(request.expected_version, required=True)
        return await client_store.rename(self.pool, client_id, name, version, caller().key_id)

    @grpc_errors
    async def DeleteClient(self, request: api.DeleteClientRequest, context: Context) -> api.DeleteClientResponse:
        client_id = visible_client_id(request.client_id)
        caller().require_admin("deleting a client")
        version = validation.expected_version(request.expected_version, required=False)
        await client_store.delete(self.pool, client_id, version, caller().key_id)
        self.on_change()
        return api.DeleteClientResponse()

    # ------------------------------------------------------------------ rules
    @grpc_errors
    async def CreateRule(self, request: api.CreateRuleRequest, context: Context) -> rule_pb2.Rule:
        client_id = visible_client_id(request.client_id)
        fields = rule_fields(request.severity, request.source, request.name, list(request.emails),
                             list(request.receiver_ids))
        rule = await rule_store.create(self.pool, client_id, fields, not request.disabled, caller().key_id,
                                       self.max_rules_per_client, self.max_recipients_per_client)
        self.on_change()
        return rule

    @grpc_errors
    async def GetRule(self, request: api.GetRuleRequest, context: Context) -> rule_pb2.Rule:
        return await rule_store.get(self.pool, canonical_uuid(request.rule_id, "rule_id"), caller().visible_client())

    @grpc_errors
    async def ListRules(self, request: api.ListRulesRequest, context: Context) -> api.ListRulesResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token)
        rules, last = await rule_store.list_page(self.pool, client_id, after, size)
        return api.ListRulesResponse(rules=rules, next_page_token=validation.encode_page_token(last) if last else "")

    @grpc_errors
    async def UpdateRule(self, request: api.UpdateRuleRequest, context: Context) -> rule_pb2.Rule:
        rule_id = canonical_uuid(request.rule_id, "rule_id")
        fields = rule_fields(request.severity, request.source, request.name, list(request.emails),
                             list(request.receiver_ids))
        version = validation.expected_version(request.expected_version, required=True)
        rule = await rule_store.update(self.pool, rule_id, fields, request.enabled, version, caller().key_id,
                                       caller().visible_client(), self.max_recipients_per_client)
        self.on_change()
        return rule

    @grpc_errors
    async def DeleteRule(self, request: api.DeleteRuleRequest, context: Context) -> api.DeleteRuleResponse:
        rule_id = canonical_uuid(request.rule_id, "rule_id")
        version = validation.expected_version(request.expected_version, required=False)
        await rule_store.delete(self.pool, rule_id, version, caller().key_id, caller().visible_client())
        self.on_change()
        return api.DeleteRuleResponse()

    # ------------------------------------------------------------------ source grants
    @grpc_errors
    async def CreateSourceGrant(self, request: api.CreateSourceGrantRequest, context: Context) -> rule_pb2.SourceGrant:
        client_id = visible_client_id(request.client_id)
        who = caller()
        who.require_admin("granting a source")
        grant, new = await grant_store.grant(self.pool, client_id, granted_source(request.source), request.prefix,
                                             who.key_id)
        if new:
            self.on_change()
        return grant

    @grpc_errors
    async def ListSourceGrants(self, request: api.ListSourceGrantsRequest, context: Context
                               ) -> api.ListSourceGrantsResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_grant_position(request.page_token)
        grants, last = await grant_store.list_page(self.pool, client_id, after, size)
        return api.ListSourceGrantsResponse(
            grants=grants, next_page_token=validation.encode_grant_position(*last) if last else "")

    @grpc_errors
    async def DeleteSourceGrant(self, request: api.DeleteSourceGrantRequest, context: Context
                                ) -> api.DeleteSourceGrantResponse:
        client_id = visible_client_id(request.client_id)
        who = caller()
        who.require_admin("revoking a source grant")
        await grant_store.revoke(self.pool, client_id, granted_source(request.source), request.prefix, who.key_id)
        self.on_change()
        return api.DeleteSourceGrantResponse()
