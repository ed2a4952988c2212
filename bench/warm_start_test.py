"""bench/warm_start.py at its smoke sizes, on the real stack: it runs and prints its table."""

import pytest
import warm_start


async def test_warm_start_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await warm_start.main(*warm_start.SMOKE)
    assert "| 2,000 |" in capsys.readouterr().out
