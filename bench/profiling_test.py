"""The reduction of py-spy's collapsed stacks to top functions, and py-spy itself (installed
by bench/profiles/install-py-spy) recording a real busy process."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from profiling import (
    FunctionTime,
    Profile,
    function_name,
    package,
    package_table,
    recording,
    reduce_stacks,
    table,
)

COLLAPSED = [
    "<module> (main.py:9);run (loop.py:3);handle (worker.py:20);decode (codec.py:5) 6",
    "<module> (main.py:9);run (loop.py:3);handle (worker.py:21) 3",
    "<module> (main.py:9);run (loop.py:4);walk (tree.py:2);walk (tree.py:7) 1",
    "",
]


def test_stacks_reduce_to_own_and_cumulative_samples_per_function_whatever_the_line() -> None:
    profile = reduce_stacks(COLLAPSED)
    assert profile.samples == 10
    assert sorted(profile.functions, key=lambda times: times.function) == [
        FunctionTime("<module> (main.py)", own=0, cumulative=10),
        FunctionTime("decode (codec.py)", own=6, cumulative=6),
        FunctionTime("handle (worker.py)", own=3, cumulative=9),
        FunctionTime("run (loop.py)", own=0, cumulative=10),
        FunctionTime("walk (tree.py)", own=1, cumulative=1),  # recursive: once per sample
    ]


def test_files_are_named_from_their_import_root_and_a_sample_without_frames_is_counted() -> None:
    profile = reduce_stacks([
        "run (/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/runners.py:118);"
        "send (/root/.cache/pex_root/venvs/s/f5/venv/lib/python3.11/site-packages/aiosmtplib/smtp.py:1441) 2",
        "handle (/tmp/pants-sandbox-YF/src/python/alerting/sender/delivery.py:325);"
        "conn (/root/.pex/installed_wheels/ab/aiokafka-0.12.0-cp311-cp311-linux_x86_64.whl/aiokafka/conn.py:7) 1",
        " 1",
    ])
    assert [(times.function, times.own) for times in profile.top("own")] == [
        ("send (aiosmtplib/smtp.py)", 2), ("(no Python frame)", 1), ("conn (aiokafka/conn.py)", 1)]
    assert profile.samples == 4
    assert [times.function for times in profile.top("cumulative", count=2)] == [
        "run (asyncio/runners.py)", "send (aiosmtplib/smtp.py)"]
    assert reduce_stacks(["<module> (<frozen runpy>:88) 1"]).functions == [
        FunctionTime("<module> (<frozen runpy>)", own=1, cumulative=1)]
    assert function_name("handle (/tmp/pants-sandbox-YF/src/python/alerting/sender/delivery.py:325)") == (
        "handle (alerting/sender/delivery.py)")


def test_tables_rank_by_own_or_cumulative_time_and_leave_out_functions_without_it() -> None:
    profile = reduce_stacks(COLLAPSED)
    assert table(profile, "own", count=2) == [
        "| own % | cumulative % | function (file) |",
        "|---:|---:|---|",
        "| 60.0 | 60.0 | `decode (codec.py)` |",
        "| 30.0 | 90.0 | `handle (worker.py)` |",
    ]
    assert [times.function for times in profile.top("own")] == [
        "decode (codec.py)", "handle (worker.py)", "walk (tree.py)"]
    assert [times.function for times in profile.top("cumulative", count=3)] == [
        "<module> (main.py)", "run (loop.py)", "handle (worker.py)"]


def test_a_frame_without_a_line_number_is_its_own_function() -> None:
    assert reduce_stacks(["<module> (main.py);spin (<string>) 4"]) == Profile(4, [
        FunctionTime("<module> (main.py)", own=0, cumulative=4), FunctionTime("spin (<string>)", own=4, cumulative=4)],
        idle=0)


def test_own_time_sums_by_package_and_by_service_for_the_project() -> None:
    profile = reduce_stacks([
        "run (/x/lib/python3.11/asyncio/runners.py:1);handle (/s/src/python/alerting/sender/delivery.py:3) 5",
        "run (/x/lib/python3.11/asyncio/runners.py:1);load (/s/src/python/alerting/sender/store.py:9) 2",
        "run (/x/lib/python3.11/asyncio/runners.py:1);check (/s/src/python/alerting/common/kafka/worker.py:4) 2",
        "run (/x/lib/python3.11/asyncio/runners.py:1);uuid4 (/x/lib/python3.11/uuid.py:7) 1",
    ])
    assert package_table(profile) == ["| own % | package or module |", "|---:|---|", "| 70.0 | `alerting/sender` |",
                                      "| 20.0 | `alerting/common` |", "| 10.0 | `uuid.py` |"]
    assert package("start_span (opentelemetry/sdk/trace/__init__.py)") == "opentelemetry"
    assert package("(no Python frame)") == "no Python frame"


def test_thread_pool_workers_waiting_for_work_are_left_out_and_counted() -> None:
    profile = reduce_stacks([
        "_bootstrap (/usr/lib/python3.11/threading.py:995);"
        "_worker (/usr/lib/python3.11/concurrent/futures/thread.py:81) 7",
        "_bootstrap (/usr/lib/python3.11/threading.py:995);"
        "_worker (/usr/lib/python3.11/concurrent/futures/thread.py:83);"
        "run (/usr/lib/python3.11/concurrent/futures/thread.py:58);digest (job.py:3) 2",
    ])
    assert (profile.samples, profile.idle) == (2, 7)
    assert [(times.function, times.cumulative) for times in profile.top("cumulative", count=2)] == [
        ("_bootstrap (threading.py)", 2), ("_worker (concurrent/futures/thread.py)", 2)]


BUSY = "def spin():\n    while True:\n        sum(range(1000))\n\nspin()\n"


async def test_py_spy_records_a_busy_process_and_its_top_functions_are_written(tmp_path: Path) -> None:
    py_spy = subprocess.run(["bench/profiles/install-py-spy"], check=True, capture_output=True,
                            text=True).stdout.strip()
    busy = await asyncio.create_subprocess_exec(sys.executable, "-c", BUSY)
    try:
        await asyncio.sleep(0.5)  # the interpreter is up
        async with recording(py_spy, {"busy": busy.pid}, tmp_path):
            await asyncio.sleep(2)
    finally:
        busy.kill()
        await busy.wait()
    profile = reduce_stacks((tmp_path / "busy.collapsed").read_text().splitlines())
    assert profile.samples >= 100  # 2 s at 100 Hz of a process that never idles, on a shared machine
    assert profile.top("cumulative", count=2) == [
        FunctionTime("<module> (<string>)", own=0, cumulative=profile.samples),
        FunctionTime("spin (<string>)", own=profile.samples, cumulative=profile.samples),
    ]
    lines = (tmp_path / "busy.md").read_text().splitlines()
    assert lines[0] == "# busy"
    assert lines[2].startswith("`py-spy record --pid <busy's pid> --rate 100 --full-filenames "
                               f"--format raw --output busy.collapsed`: {profile.samples:,} samples of its busy "
                               "threads in ")
    assert lines[2].endswith("threads running or ready to run. Idle threads are not sampled; 0 samples of "
                             "thread-pool workers waiting for work are left out.")
    assert lines[4:9] == ["## Top 30 by own time", "", "| own % | cumulative % | function (file) |", "|---:|---:|---|",
                          "| 100.0 | 100.0 | `spin (<string>)` |"]


async def test_a_process_py_spy_cannot_read_fails_the_recording_after_the_others_are_written(tmp_path: Path) -> None:
    py_spy = subprocess.run(["bench/profiles/install-py-spy"], check=True, capture_output=True,
                            text=True).stdout.strip()
    busy = await asyncio.create_subprocess_exec(sys.executable, "-c", BUSY)
    not_python = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        await asyncio.sleep(0.5)
        with pytest.raises(RuntimeError, match=r"^py-spy on sleep exited with 1: "):
            async with recording(py_spy, {"busy": busy.pid, "sleep": not_python.pid}, tmp_path):
                await asyncio.sleep(1)
    finally:
        for process in (busy, not_python):
            process.kill()
            await process.wait()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["busy.collapsed", "busy.md"]
