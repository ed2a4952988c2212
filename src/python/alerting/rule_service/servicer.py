"""The gRPC RuleService: clients, rules and source grants in Postgres, every change of a rule
or a grant into the outbox.

Every call has a caller (auth.py): an admin sees every client, a tenant only its own; ids
the caller may not see are NOT_FOUND, like ids that do not exist. Only an admin grants and
revokes sources: a tenant that could grant itself sources could read anyone's alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

import asyncpg

from alerting.common.validation import canonical_uuid
from alerting.rule_service import outbox, validation
from alerting.rule_service.auth import caller, visible_client_id
from alerting.rule_service.errors import NotFound, QuotaExceeded, StaleVersion, grpc_errors
from alerting.rule_service.limits import check_recipients
from alerting.rules.changelog import DELETE, GRANT, REVOKE, UPSERT
from alerting.rules.records import GRANT_COLUMNS, RULE_COLUMNS, grant_from_row, rule_from_row
from alerting.rules.validation import granted_source, rule_fields
from alerting.v1 import rule_pb2, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api

if TYPE_CHECKING:
    from alerting.rule_service.errors import Context

CLIENT_COLUMNS = "client_id, name, version, created_at, updated_at, updated_by"
DEFAULT_MAX_RECIPIENTS_PER_CLIENT = 100
# A client's distinct recipients across its rules: now, and with one rule's emails replaced
# by $3 (a new rule when $2 is NULL).
RECIPIENTS = (
    "SELECT (SELECT count(DISTINCT email) FROM rules, unnest(emails) AS email WHERE client_id = $1) AS before,"
    " (SELECT count(*) FROM (SELECT unnest(emails) FROM rules WHERE client_id = $1 AND rule_id IS DISTINCT FROM $2"
    " UNION SELECT unnest($3::text[])) AS recipients) AS after"
)


def client_message(row: asyncpg.Record) -> rule_pb2.Client:
    client = rule_pb2.Client(client_id=str(row["client_id"]), name=row["name"], version=row["version"],
                             updated_by=row["updated_by"])
    client.created_at.FromDatetime(row["created_at"])
    client.updated_at.FromDatetime(row["updated_at"])
    return client


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
        name = validation.client_name(request.name)
        row = await self.pool.fetchrow(
            f"INSERT INTO clients (name, updated_by) VALUES ($1, $2) RETURNING {CLIENT_COLUMNS}", name, who.key_id)
        return client_message(row)

    @grpc_errors
    async def GetClient(self, request: api.GetClientRequest, context: Context) -> rule_pb2.Client:
        client_id = visible_client_id(request.client_id)
        row = await self.pool.fetchrow(f"SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1", client_id)
        if row is None:
            raise NotFound(f"client_id: no client {client_id}")
        return client_message(row)

    @grpc_errors
    async def ListClients(self, request: api.ListClientsRequest, context: Context) -> api.ListClientsResponse:
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token)
        rows = await self.pool.fetch(
            f"SELECT {CLIENT_COLUMNS} FROM clients WHERE ($1::uuid IS NULL OR client_id > $1::uuid)"
            " AND ($3::uuid IS NULL OR client_id = $3::uuid) ORDER BY client_id LIMIT $2",
            after, size + 1, caller().visible_client(),
        )
        page = rows[:size]
        token = validation.encode_page_token(str(page[-1]["client_id"])) if len(rows) > size else ""
        return api.ListClientsResponse(clients=[client_message(r) for r in page], next_page_token=token)

    @grpc_errors
    async def UpdateClient(self, request: api.UpdateClientRequest, context: Context) -> rule_pb2.Client:
        client_id = visible_client_id(request.client_id)
        caller().require_admin("changing a client")
        name = validation.client_name(request.name)
        version = validation.expected_version(request.expected_version, required=True)
        row = await self.pool.fetchrow(
            f"UPDATE clients SET name = $2, version = version + 1, updated_at = now(), updated_by = $4"
            f" WHERE client_id = $1 AND version = $3 RETURNING {CLIENT_COLUMNS}",
            client_id, name, version, caller().key_id,
        )
        if row is None:
            await self._explain_missed_write("clients", "client_id", client_id, version)
        return client_message(row)

    @grpc_errors
    async def DeleteClient(self, request: api.DeleteClientRequest, context: Context) -> api.DeleteClientResponse:
        client_id = visible_client_id(request.client_id)
        caller().require_admin("deleting a client")
        version = validation.expected_version(request.expected_version, required=False)
        async with self.pool.acquire() as connection, connection.transaction():
            # Lock the client before reading its rules: an uncommitted rule insert holds a key-share
            # lock on the client row, so this waits for it, and the next statement (a new snapshot)
            # sees its rule. Afterwards no rule can be added, and the cascade removes exactly `rules`.
            await connection.execute("SELECT 1 FROM clients WHERE client_id = $1 FOR UPDATE", client_id)
            rules = await connection.fetch("SELECT rule_id FROM rules WHERE client_id = $1 FOR UPDATE", client_id)
            # A grant given meanwhile waits for the client's lock too (its foreign key); one revoked
            # meanwhile is revoked twice on the log, which changes nothing.
            grants = await connection.fetch(f"SELECT {GRANT_COLUMNS} FROM source_grants WHERE client_id = $1",
                                            client_id)
            deleted = await connection.fetchval(
                "DELETE FROM clients WHERE client_id = $1 AND ($2 = 0 OR version = $2) RETURNING client_id",
                client_id, version,
            )
            if deleted is None:
                await self._explain_missed_write("clients", "client_id", client_id, version, connection)
            for rule in rules:
                await outbox.add_change(connection, DELETE, str(rule["rule_id"]), client_id, None, caller().key_id)
            # Revoked in the log too: the cascade removed them from Postgres, and the snapshot
            # and the evaluators' indexes must forget them alike.
            for grant in grants:
                await outbox.add_grant_change(connection, REVOKE, grant_from_row(grant), caller().key_id)
        self.on_change()
        return api.DeleteClientResponse()

    # ------------------------------------------------------------------ rules
    @grpc_errors
    async def CreateRule(self, request: api.CreateRuleRequest, context: Context) -> rule_pb2.Rule:
        client_id = visible_client_id(request.client_id)
        severity, source, name, emails = rule_fields(
            request.severity, request.source, request.name, list(request.emails))
        async with self.pool.acquire() as connection, connection.transaction():
            # Creations for one client take turns here, so that none goes past the quota.
            if await connection.fetchval(
                    "SELECT 1 FROM clients WHERE client_id = $1 FOR NO KEY UPDATE", client_id) is None:
                raise NotFound(f"client_id: no client {client_id}")
            count = await connection.fetchval("SELECT count(*) FROM rules WHERE client_id = $1", client_id)
            if count >= self.max_rules_per_client:
                raise QuotaExceeded(f"client_id: client {client_id} has {count} rules, the most a client may have"
                                    f" ({self.max_rules_per_client}); delete one first")
            await self._check_recipients(connection, client_id, None, emails)
            row = await connection.fetchrow(
                f"INSERT INTO rules (client_id, severity, source, name, emails, enabled, updated_by)"
                f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RULE_COLUMNS}",
                client_id, severity, source, name, emails, not request.disabled, caller().key_id,
            )
            rule = rule_from_row(row)
            await outbox.add_change(connection, UPSERT, rule.rule_id, client_id, rule, caller().key_id)
        self.on_change()
        return rule

    @grpc_errors
    async def GetRule(self, request: api.GetRuleRequest, context: Context) -> rule_pb2.Rule:
        rule_id = canonical_uuid(request.rule_id, "rule_id")
        row = await self.pool.fetchrow(
            f"SELECT {RULE_COLUMNS} FROM rules WHERE rule_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)",
            rule_id, caller().visible_client())
        if row is None:
            raise NotFound(f"rule_id: no rule {rule_id}")
        return rule_from_row(row)

    @grpc_errors
    async def ListRules(self, request: api.ListRulesRequest, context: Context) -> api.ListRulesResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_page_token(request.page_token)
        rows = await self.pool.fetch(
            f"SELECT {RULE_COLUMNS} FROM rules WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
            " AND ($2::uuid IS NULL OR rule_id > $2::uuid) ORDER BY rule_id LIMIT $3",
            client_id, after, size + 1,
        )
        page = rows[:size]
        token = validation.encode_page_token(str(page[-1]["rule_id"])) if len(rows) > size else ""
        return api.ListRulesResponse(rules=[rule_from_row(r) for r in page], next_page_token=token)

    @grpc_errors
    async def UpdateRule(self, request: api.UpdateRuleRequest, context: Context) -> rule_pb2.Rule:
        rule_id = canonical_uuid(request.rule_id, "rule_id")
        severity, source, name, emails = rule_fields(
            request.severity, request.source, request.name, list(request.emails))
        version = validation.expected_version(request.expected_version, required=True)
        async with self.pool.acquire() as connection, connection.transaction():
            client_id = await connection.fetchval(
                "SELECT client_id FROM rules WHERE rule_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)",
                rule_id, caller().visible_client())
            if client_id is not None:  # else the update below finds nothing, and says why
                # Rule changes of one client take turns here (as creations do), so that none
                # takes it past its recipient limit.
                await connection.execute("SELECT 1 FROM clients WHERE client_id = $1 FOR NO KEY UPDATE", client_id)
                await self._check_recipients(connection, str(client_id), rule_id, emails)
            row = await connection.fetchrow(
                f"UPDATE rules SET severity = $2, source = $3, name = $4, emails = $5, enabled = $6,"
                f" version = version + 1, updated_at = now(), updated_by = $8"
                f" WHERE rule_id = $1 AND version = $7 AND ($9::uuid IS NULL OR client_id = $9::uuid)"
                f" RETURNING {RULE_COLUMNS}",
                rule_id, severity, source, name, emails, request.enabled, version, caller().key_id,
                caller().visible_client(),
            )
            if row is None:
                await self._explain_missed_write("rules", "rule_id", rule_id, version, connection)
            rule = rule_from_row(row)
            await outbox.add_change(connection, UPSERT, rule_id, rule.client_id, rule, caller().key_id)
        self.on_change()
        return rule

    @grpc_errors
    async def DeleteRule(self, request: api.DeleteRuleRequest, context: Context) -> api.DeleteRuleResponse:
        rule_id = canonical_uuid(request.rule_id, "rule_id")
        version = validation.expected_version(request.expected_version, required=False)
        async with self.pool.acquire() as connection, connection.transaction():
            client_id = await connection.fetchval(
                "DELETE FROM rules WHERE rule_id = $1 AND ($2 = 0 OR version = $2)"
                " AND ($3::uuid IS NULL OR client_id = $3::uuid) RETURNING client_id",
                rule_id, version, caller().visible_client(),
            )
            if client_id is None:
                await self._explain_missed_write("rules", "rule_id", rule_id, version, connection)
            await outbox.add_change(connection, DELETE, rule_id, str(client_id), None, caller().key_id)
        self.on_change()
        return api.DeleteRuleResponse()

    # ------------------------------------------------------------------ source grants
    @grpc_errors
    async def CreateSourceGrant(self, request: api.CreateSourceGrantRequest, context: Context) -> rule_pb2.SourceGrant:
        client_id = visible_client_id(request.client_id)
        who = caller()
        who.require_admin("granting a source")
        source = granted_source(request.source)
        async with self.pool.acquire() as connection, connection.transaction():
            while True:
                row = await connection.fetchrow(
                    f"INSERT INTO source_grants (client_id, source, prefix, created_by) VALUES ($1, $2, $3, $4)"
                    f" ON CONFLICT DO NOTHING RETURNING {GRANT_COLUMNS}", client_id, source, request.prefix, who.key_id)
                if row is not None:
                    break
                existing = await connection.fetchrow(
                    f"SELECT {GRANT_COLUMNS} FROM source_grants WHERE client_id = $1 AND source = $2 AND prefix = $3",
                    client_id, source, request.prefix)
                if existing is not None:  # else revoked meanwhile: grant it again
                    return grant_from_row(existing)
            grant = grant_from_row(row)
            await outbox.add_grant_change(connection, GRANT, grant, who.key_id)
        self.on_change()
        return grant

    @grpc_errors
    async def ListSourceGrants(self, request: api.ListSourceGrantsRequest, context: Context
                               ) -> api.ListSourceGrantsResponse:
        client_id = visible_client_id(request.client_id) if request.client_id else caller().visible_client()
        size = validation.page_size(request.page_size)
        after = validation.decode_grant_position(request.page_token)
        after_client, after_source, after_prefix = after or (None, None, None)
        rows = await self.pool.fetch(
            f"SELECT {GRANT_COLUMNS} FROM source_grants WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
            " AND ($2::uuid IS NULL OR (client_id, source, prefix) > ($2::uuid, $3::text, $4::boolean))"
            " ORDER BY client_id, source, prefix LIMIT $5",
            client_id, after_client, after_source, after_prefix, size + 1,
        )
        page = rows[:size]
        token = validation.encode_grant_position(str(page[-1]["client_id"]), page[-1]["source"],
                                                 page[-1]["prefix"]) if len(rows) > size else ""
        return api.ListSourceGrantsResponse(grants=[grant_from_row(r) for r in page], next_page_token=token)

    @grpc_errors
    async def DeleteSourceGrant(self, request: api.DeleteSourceGrantRequest, context: Context
                                ) -> api.DeleteSourceGrantResponse:
        client_id = visible_client_id(request.client_id)
        who = caller()
        who.require_admin("revoking a source grant")
        source = granted_source(request.source)
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"DELETE FROM source_grants WHERE client_id = $1 AND source = $2 AND prefix = $3"
                f" RETURNING {GRANT_COLUMNS}", client_id, source, request.prefix)
            if row is None:
                kind = "prefix" if request.prefix else "source"
                raise NotFound(f"source: client {client_id} has no grant of the {kind} {source!r}")
            await outbox.add_grant_change(connection, REVOKE, grant_from_row(row), who.key_id)
        self.on_change()
        return api.DeleteSourceGrantResponse()

    async def _check_recipients(self, connection: asyncpg.Connection, client_id: str, rule_id: str | None,
                                emails: list[str]) -> None:
        """The client's recipients (its rules' distinct addresses) within its limit once the rule
        `rule_id` (None: a new one) has `emails`; the caller holds the client's row lock."""
        counts = await connection.fetchrow(RECIPIENTS, client_id, rule_id, emails)
        check_recipients(client_id, len(emails), counts["before"], counts["after"], self.max_recipients_per_client)

    async def _explain_missed_write(
        self,
        table: str,
        id_column: str,
        id_value: str,
        version: int,
        connection: asyncpg.Connection | None = None,
    ) -> NoReturn:
        """A conditional write matched nothing: say whether the row is missing (or not the
        caller's) or stale."""
        connection = connection or self.pool
        current = await connection.fetchval(
            f"SELECT version FROM {table} WHERE {id_column} = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)",
            id_value, caller().visible_client())
        if current is None:
            raise NotFound(f"{id_column}: no {table[:-1]} {id_value}")
        raise StaleVersion(f"expected_version: is {version}, the current version is {current}")
