"""Consistency rules for migrations/: numbering, ownership ranges and up/down pairs."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

FILE_NAME = re.compile(r"^(?P<number>\d{6})_(?P<name>[a-z0-9_]+)(?P<rollback>\.rollback)?\.sql$")


@dataclass(frozen=True)
class Range:
    owner: str
    first: int
    last: int


CONTROL_PLANE = "control plane (rule-service)"
DATA_PLANE = "data plane (aggregator, sender)"
# Numbers are global; within each range its owner numbers migrations contiguously from the
# first. An owner whose range is full continues in a later range of its own.
RANGES = (
    Range(CONTROL_PLANE, 1, 5),
    Range(DATA_PLANE, 6, 9),
    Range(CONTROL_PLANE, 10, 499_999),
    Range(DATA_PLANE, 500_000, 999_999),
)


def owner_of(number: int) -> Range | None:
    return next((r for r in RANGES if r.first <= number <= r.last), None)


def check_migrations(filenames: list[str]) -> list[str]:
    """Every problem with a migrations folder holding `filenames`; empty when consistent."""
    problems: list[str] = [] if filenames else ["no migrations at all: is this the migrations folder?"]
    ups: dict[int, list[str]] = defaultdict(list)
    downs: dict[int, list[str]] = defaultdict(list)
    for filename in sorted(filenames):
        match = FILE_NAME.match(filename)
        if not match:
            problems.append(f"{filename}: name must be NNNNNN_lower_snake.sql or NNNNNN_lower_snake.rollback.sql")
            continue
        number = int(match["number"])
        (downs if match["rollback"] else ups)[number].append(filename)
        if owner_of(number) is None:
            problems.append(f"{filename}: number {number} is outside every owner's range")

    for number in sorted(set(ups) | set(downs)):
        if len(ups[number]) > 1:
            problems.append(f"duplicate number {number:06d}: {', '.join(ups[number])}")
        for up in ups[number]:
            rollback = f"{up.removesuffix('.sql')}.rollback.sql"
            if rollback not in downs[number]:
                problems.append(f"{up}: missing its rollback {rollback}")
        for down in downs[number]:
            problems += _rollback_problems(down, ups[number])

    for owner in RANGES:
        numbers = sorted(n for n in ups if owner.first <= n <= owner.last)
        expected = owner.first
        for number in numbers:
            if number != expected:
                problems.append(f"gap in {owner.owner}: {expected:06d} is missing before {number:06d}")
            expected = number + 1
    return problems


def _rollback_problems(rollback: str, ups_of_its_number: list[str]) -> list[str]:
    """yoyo pairs a rollback with the migration of exactly its name; any other is never run."""
    if not ups_of_its_number:
        return [f"{rollback}: rollback without its migration"]
    if f"{rollback.removesuffix('.rollback.sql')}.sql" not in ups_of_its_number:
        return [f"{rollback}: name differs from its migration {', '.join(ups_of_its_number)}"]
    return []
