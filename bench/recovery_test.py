"""bench/recovery.py at its smoke sizes, every worker killed and restarted once: it runs, and
every alert ends with exactly one notification, SENT (its exit code says so)."""

import pytest
import recovery


async def test_recovery_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert await recovery.main(recovery.SMOKE, None) == 0
    report = capsys.readouterr().out
    assert "correctness, exactly one SENT notification per alert: OK" in report
    assert report.count("| evaluator |") + report.count("| sender |") == 2
