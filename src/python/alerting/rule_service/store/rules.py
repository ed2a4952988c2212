"""Rules in Postgres, each change recorded in the outbox in its transaction; a client's
rules within its quotas (how many rules, how many distinct recipients)."""

from __future__ import annotations

import asyncpg

from alerting.rule_service import outbox
from alerting.rule_service.errors import NotFound, QuotaExceeded
from alerting.rule_service.limits import check_recipients
from alerting.rule_service.store import clients
from alerting.rule_service.store import receivers as receiver_store
from alerting.rule_service.store.rows import explain_missed_write, page, visible_row
from alerting.rules.changelog import DELETE, UPSERT
from alerting.rules.records import RULE_COLUMNS, rule_from_row
from alerting.v1 import rule_pb2

# What a rule matches and whom it notifies: severity, source, name, emails, receiver ids
# (rules.validation.rule_fields).
RuleFields = tuple[str, str, str, list[str], list[str]]
# A client's distinct recipients across its rules: now, and with one rule's emails replaced
# by $3 (a new rule when $2 is NULL).
RECIPIENTS = (
    "SELECT (SELECT count(DISTINCT email) FROM rules, unnest(emails) AS email WHERE client_id = $1) AS before,"
    " (SELECT count(*) FROM (SELECT unnest(emails) FROM rules WHERE client_id = $1 AND rule_id IS DISTINCT FROM $2"
    " UNION SELECT unnest($3::text[])) AS recipients) AS after"
)


async def create(pool: asyncpg.Pool, client_id: str, fields: RuleFields, enabled: bool, created_by: str,
                 max_rules: int, max_recipients: int) -> rule_pb2.Rule:
    """A new rule of the client, within its quotas, naming the client's receivers only."""
    severity, source, name, emails, receiver_ids = fields
    async with pool.acquire() as connection, connection.transaction():
        # Creations for one client take turns here, so that none goes past the quota.
        await clients.lock_existing(connection, client_id)
        count = await connection.fetchval("SELECT count(*) FROM rules WHERE client_id = $1", client_id)
        if count >= max_rules:
            raise QuotaExceeded(f"client_id: client {client_id} has {count} rules, the most a client may have"
                                f" ({max_rules}); delete one first")
        await _check_recipients(connection, client_id, None, emails, max_recipients)
        await _check_receivers(connection, client_id, receiver_ids)
        row = await connection.fetchrow(
            f"INSERT INTO rules (client_id, severity, source, name, emails, receiver_ids, enabled, updated_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {RULE_COLUMNS}",
            client_id, severity, source, name, emails, receiver_ids, enabled, created_by,
        )
        rule = rule_from_row(row)
        await outbox.add_change(connection, UPSERT, rule.rule_id, client_id, rule, created_by)
    return rule


async def get(pool: asyncpg.Pool, rule_id: str, visible_client: str | None) -> rule_pb2.Rule:
    """The rule (only of `visible_client`, when set)."""
    return rule_from_row(await visible_row(pool, "rules", RULE_COLUMNS, "rule_id", rule_id, visible_client))


async def list_page(pool: asyncpg.Pool, client_id: str | None, after: str | None, size: int
                    ) -> tuple[list[rule_pb2.Rule], str | None]:
    """Rules by id after `after` (only `client_id`'s, when set); the last id when more follow."""
    rows = await pool.fetch(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
        " AND ($2::uuid IS NULL OR rule_id > $2::uuid) ORDER BY rule_id LIMIT $3",
        client_id, after, size + 1,
    )
    return page(rows, size, rule_from_row, lambda row: str(row["rule_id"]))


async def update(pool: asyncpg.Pool, rule_id: str, fields: RuleFields, enabled: bool, version: int,
                 changed_by: str, visible_client: str | None, max_recipients: int) -> rule_pb2.Rule:
    """The rule at `version` (only of `visible_client`, when set) replaced, within its
    client's recipient limit, naming the client's receivers only."""
    severity, source, name, emails, receiver_ids = fields
    async with pool.acquire() as connection, connection.transaction():
        client_id = await connection.fetchval(
            "SELECT client_id FROM rules WHERE rule_id = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)",
            rule_id, visible_client)
        if client_id is not None:  # else the update below finds nothing, and says why
            # Rule changes of one client take turns here (as creations do), so that none
            # takes it past its recipient limit.
            await clients.lock(connection, client_id, "NO KEY UPDATE")
            await _check_recipients(connection, str(client_id), rule_id, emails, max_recipients)
            await _check_receivers(connection, str(client_id), receiver_ids)
        row = await connection.fetchrow(
            f"UPDATE rules SET severity = $2, source = $3, name = $4, emails = $5, enabled = $6,"
            f" version = version + 1, updated_at = now(), updated_by = $8, receiver_ids = $10"
            f" WHERE rule_id = $1 AND version = $7 AND ($9::uuid IS NULL OR client_id = $9::uuid)"
            f" RETURNING {RULE_COLUMNS}",
            rule_id, severity, source, name, emails, enabled, version, changed_by, visible_client, receiver_ids,
        )
        if row is None:
            await explain_missed_write(connection, "rules", "rule_id", rule_id, version, visible_client)
        rule = rule_from_row(row)
        await outbox.add_change(connection, UPSERT, rule_id, rule.client_id, rule, changed_by)
    return rule


async def delete(pool: asyncpg.Pool, rule_id: str, version: int, changed_by: str, visible_client: str | None
                 ) -> None:
    """The rule (at `version`, unless 0; only of `visible_client`, when set) deleted."""
    async with pool.acquire() as connection, connection.transaction():
        client_id = await connection.fetchval(
            "DELETE FROM rules WHERE rule_id = $1 AND ($2 = 0 OR version = $2)"
            " AND ($3::uuid IS NULL OR client_id = $3::uuid) RETURNING client_id",
            rule_id, version, visible_client,
        )
        if client_id is None:
            await explain_missed_write(connection, "rules", "rule_id", rule_id, version, visible_client)
        await outbox.add_change(connection, DELETE, rule_id, str(client_id), None, changed_by)


async def _check_recipients(connection: asyncpg.Connection, client_id: str, rule_id: str | None,
                            emails: list[str], limit: int) -> None:
    """The client's recipients (its rules' distinct addresses) within `limit` once the rule
    `rule_id` (None: a new one) has `emails`; the caller holds the client's row lock."""
    counts = await connection.fetchrow(RECIPIENTS, client_id, rule_id, emails)
    check_recipients(client_id, len(emails), counts["before"], counts["after"], limit)


async def _check_receivers(connection: asyncpg.Connection, client_id: str, receiver_ids: list[str]) -> None:
    """Every receiver named is the client's (another client's is as unknown as a missing one)."""
    missing = await receiver_store.missing_of_client(connection, client_id, receiver_ids)
    if missing:
        raise NotFound(f"receiver_ids: no receiver {missing[0]}")
