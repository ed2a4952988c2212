"""bench/auth.py at its smoke sizes, on the real stack: it runs and prints its tables."""

import auth
import pytest


async def test_auth_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await auth.main(auth.SMOKE)
    tables = capsys.readouterr().out
    assert "| call | variant | µs/call |" in tables
    assert "| no cache: one SELECT from api_keys |" in tables
