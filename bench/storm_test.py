"""bench/storm.py at its smoke sizes, every service a process on the real stack: both runs
record every notification exactly, the baseline sends the storm as one email each, and it
prints its table."""

import pytest
import storm


async def test_storm_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await storm.main(storm.SMOKE)
    table = capsys.readouterr().out
    assert "| default | 300 of 300 | " in table
    assert "| group_wait 0 (baseline) | 300 of 300 | 300 | 1 | 0 |" in table
    assert table.count(" | yes |") == 2
