"""bench/matching.py at its smoke sizes: it runs and prints its table."""

import matching
import pytest


def test_matching_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    matching.main(matching.SMOKE)
    table = capsys.readouterr().out
    assert "| rules | index µs/alert |" in table
    assert "| 1,000 |" in table
