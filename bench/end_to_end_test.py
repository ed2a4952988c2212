"""bench/end_to_end.py at its smoke sizes, every service a process on the real stack: it
runs, every alert reaches SENT, and it prints its tables."""

import os

import end_to_end
import pytest


async def test_end_to_end_runs_at_smoke_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await end_to_end.main(end_to_end.SMOKE)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| CPU per notification, throughput phase | smtp-sink | rule-service | rule-updater "
                        "| evaluator | aggregator | sender | producer (this script) | whole machine |")
    assert lines[4] == ("| raw broker (produce+consume) | sustained alerts → SENT | ratio "
                        "| latency at half load: p50 | p99 |")
    assert lines[8] == ("| platform only: evaluator + aggregator + sender | notifications per CPU-second "
                        f"| on {os.cpu_count()} cores without sink and load generator "
                        "| outside: smtp-sink + producer (this script) |")
    assert lines[12] == ("| latency at half load | alert → SENT | alert → recorded (evaluator, aggregator) "
                         "| recorded → SENT (sender) |")
    assert [line.split(" | ")[0] for line in lines[14:]] == ["| p50", "| p99"]


def test_p50_and_p99_are_read_from_sorted_values() -> None:
    assert end_to_end.p50_p99([float(n) for n in range(1, 101)]) == (50.5, 99.0)


def test_platform_cost_counts_the_evaluator_aggregator_and_sender_alone() -> None:
    cpu_per_alert = {"smtp-sink": 600.0, "rule-service": 3.0, "rule-updater": 16.0, "evaluator": 200.0,
                     "aggregator": 300.0, "sender": 500.0, "producer (this script)": 150.0, "whole machine": 3000.0}
    assert end_to_end.platform_cost(cpu_per_alert, cores=2) == end_to_end.PlatformCost(
        micros=1000.0, per_cpu_second=1000.0, cores=2, on_cores=2000.0, outside_micros=750.0)
