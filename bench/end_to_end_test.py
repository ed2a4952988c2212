"""bench/end_to_end.py at its smoke sizes, every service a process on the real stack: it
runs, every alert reaches SENT, and it prints its tables."""

import end_to_end
import pytest


async def test_end_to_end_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await end_to_end.main(end_to_end.SMOKE)
    tables = capsys.readouterr().out
    assert "| CPU per notification, throughput phase |" in tables
    assert "| raw broker (produce+consume) | sustained alerts → SENT |" in tables
