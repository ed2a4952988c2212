"""What the stores share: a page of a list read with one row more than it shows, a row by
its id as a caller may see it, and why a conditional write (by id and version) matched
nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

import asyncpg

from alerting.rule_service.errors import NotFound, StaleVersion

Item = TypeVar("Item")
Position = TypeVar("Position")


def page(rows: Sequence[asyncpg.Record], size: int, item: Callable[[asyncpg.Record], Item],
         position: Callable[[asyncpg.Record], Position]) -> tuple[list[Item], Position | None]:
    """The first `size` of `rows` (read with LIMIT size + 1) as items, and the position of
    the last of them when there are more: where the next page starts after."""
    shown = rows[:size]
    return [item(row) for row in shown], position(shown[-1]) if len(rows) > size else None


async def visible_row(connection: asyncpg.Connection | asyncpg.Pool, table: str, columns: str, id_column: str,
                      id_value: str, visible_client: str | None) -> asyncpg.Record:
    """The `columns` of the row of `table` (rules, silences, ...) whose `id_column` is
    `id_value`; NotFound when there is none (that is `visible_client`'s, when that is set)."""
    row = await connection.fetchrow(
        f"SELECT {columns} FROM {table} WHERE {id_column} = $1 AND ($2::uuid IS NULL OR client_id = $2::uuid)",
        id_value, visible_client)
    if row is None:
        raise NotFound(f"{id_column}: no {table[:-1]} {id_value}")
    return row


async def explain_missed_write(connection: asyncpg.Connection | asyncpg.Pool, table: str, id_column: str,
                               id_value: str, version: int, visible_client: str | None) -> NoReturn:
    """A conditional write matched nothing: say whether the row is missing (or not
    `visible_client`'s, when that is set) or stale."""
    current = await visible_row(connection, table, "version", id_column, id_value, visible_client)
    raise StaleVersion(f"expected_version: is {version}, the current version is {current['version']}")
