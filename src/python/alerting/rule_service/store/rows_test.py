from __future__ import annotations

import pytest

from alerting.rule_service.store.rows import page

ROWS = [{"id": "a"}, {"id": "b"}, {"id": "c"}]


@pytest.mark.parametrize("read, size, expected", [
    (ROWS, 2, (["A", "B"], "b")),  # one row more than the page: another page follows, after b
    (ROWS, 3, (["A", "B", "C"], None)),
    (ROWS[:2], 3, (["A", "B"], None)),
    ([], 3, ([], None)),
])
def test_a_page_shows_size_rows_and_where_the_next_starts_only_when_one_follows(
        read: list[dict[str, str]], size: int, expected: tuple[list[str], str | None]) -> None:
    assert page(read, size, lambda row: row["id"].upper(), lambda row: row["id"]) == expected
