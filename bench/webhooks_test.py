"""bench/webhooks.py at its smoke sizes, against a real HTTP server in a process of its own:
every request of both paths accepted, and its table printed."""

import pytest
import webhooks


def test_webhooks_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    webhooks.main(webhooks.SMOKE)
    table = capsys.readouterr().out
    assert "| plain httpx (baseline) | 40 of 40 | " in table
    assert "| the platform's | 40 of 40 | " in table
