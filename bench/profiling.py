"""py-spy attached to running processes while a benchmark phase runs, and its collapsed
stacks reduced to the functions that cost the most: own time (the sampled frame itself,
with the C code it calls) and cumulative time (anywhere on the stack)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

SAMPLES_PER_SECOND = 100
TOP = 30
# py-spy's frame: "function (file:line)", the line left out when py-spy does not know it.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Where a module's import path starts in a file name: the standard library, third-party
# packages (a virtualenv's or a PEX's), and the project's source root.
_IMPORT_ROOT = re.compile(r"^.*/(?:lib/python3\.\d+|site-packages|[^/]+\.whl|src/python)/")
# Innermost frames of threads that wait for work, which py-spy counts as busy when it pauses
# the process to sample it (a thread pool's worker blocked in its queue's get(), in C).
IDLE_WAITS = frozenset({"_worker (concurrent/futures/thread.py)"})


@dataclass(frozen=True)
class FunctionTime:
    function: str  # "name (file)"
    own: int  # samples in which it was the innermost frame
    cumulative: int  # samples in which it was anywhere on the stack


@dataclass(frozen=True)
class Profile:
    samples: int
    functions: list[FunctionTime]
    idle: int  # samples left out, their innermost frame one of IDLE_WAITS

    def top(self, key: str, count: int = TOP) -> list[FunctionTime]:
        """The `count` functions with the most `key` time ("own" or "cumulative"), none without."""
        ranked = sorted(self.functions, key=lambda times: (-getattr(times, key), times.function))
        return [times for times in ranked if getattr(times, key) > 0][:count]


def function_name(frame: str) -> str:
    """A frame without its line number, its file named from its import root: one entry per
    function, whichever sandbox or virtualenv the process ran from."""
    match = _FRAME.match(frame)
    return f"{match['function']} ({_IMPORT_ROOT.sub('', match['file'])})" if match else frame


def reduce_stacks(collapsed: Iterable[str]) -> Profile:
    """The functions of collapsed stacks ("frame;frame;... count" per line, outermost first),
    but for stacks of threads waiting for work."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    samples = idle = 0
    for line in collapsed:
        if not line.strip():
            continue
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        count = int(count_text)
        # A sample taken while the interpreter was between frames has none.
        functions = [function_name(frame) for frame in stack.split(";")] if stack else ["(no Python frame)"]
        if functions[-1] in IDLE_WAITS:
            idle += count
            continue
        samples += count
        own[functions[-1]] += count
        for function in dict.fromkeys(functions):  # once per sample if recursive; outermost first
            cumulative[function] += count
    return Profile(samples, [FunctionTime(function, own[function], cumulative[function]) for function in cumulative],
                   idle)


def table(profile: Profile, key: str, count: int = TOP) -> list[str]:
    """Markdown rows of the top `count` functions by `key` ("own" or "cumulative")."""
    rows = ["| own % | cumulative % | function (file) |", "|---:|---:|---|"]
    for times in profile.top(key, count):
        rows.append(f"| {100 * times.own / profile.samples:.1f} | {100 * times.cumulative / profile.samples:.1f} "
                    f"| `{times.function}` |")
    return rows


def package(function: str) -> str:
    """The distribution or standard module a function's file belongs to; the project's by
    service ("alerting/sender")."""
    parts = function[function.rindex("(") + 1:-1].split("/")
    return "/".join(parts[:2]) if parts[0] == "alerting" and len(parts) > 2 else parts[0]


def package_table(profile: Profile, count: int = TOP) -> list[str]:
    """Markdown rows of the packages with the most own time, summed over their functions."""
    own: Counter[str] = Counter()
    for times in profile.functions:
        own[package(times.function)] += times.own
    rows = ["| own % | package or module |", "|---:|---|"]
    for name, samples in sorted(own.items(), key=lambda item: (-item[1], item[0]))[:count]:
        if samples:
            rows.append(f"| {100 * samples / profile.samples:.1f} | `{name}` |")
    return rows


def summary(name: str, profile: Profile, seconds: float, command: str) -> str:
    """A process's profile as text: how it was taken, and its top functions both ways."""
    return "\n".join([
        f"# {name}",
        "",
        f"`{command}`: {profile.samples:,} samples of its busy threads in {seconds:.1f} s, on average "
        f"{profile.samples / (SAMPLES_PER_SECOND * seconds):.2f} threads running or ready to run. Idle threads "
        f"are not sampled; {profile.idle:,} samples of thread-pool workers waiting for work are left out.",
        "",
        f"## Top {TOP} by own time",
        "",
        *table(profile, "own"),
        "",
        f"## Top {TOP} by cumulative time",
        "",
        *table(profile, "cumulative"),
        "",
        "## Own time by package",
        "",
        *package_table(profile),
        "",
    ])


def record_command(py_spy: str, pid: int | str, output: Path) -> list[str]:
    # py-spy pauses the process for each sample (its default): with --nonblocking it read
    # stacks as they changed and crashed (SIGSEGV, py-spy 0.4.2) during a full-size run.
    return [py_spy, "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_SECOND), "--full-filenames",
            "--format", "raw", "--output", str(output)]


@asynccontextmanager
async def recording(py_spy: str, pids: dict[str, int], directory: Path) -> AsyncIterator[None]:
    """py-spy on each named process while the block runs; then, in `directory`, its collapsed
    stacks (<name>.collapsed) and its top functions (<name>.md)."""
    directory.mkdir(parents=True, exist_ok=True)
    spies = {name: await asyncio.create_subprocess_exec(
        *record_command(py_spy, pid, directory / f"{name}.collapsed"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE) for name, pid in pids.items()}
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        for spy in spies.values():
            if spy.returncode is None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        errors = dict(zip(spies, await asyncio.gather(*(spy.communicate() for spy in spies.values())), strict=True))
    failures = []
    for name, spy in spies.items():
        collapsed = directory / f"{name}.collapsed"
        if spy.returncode != 0 or not collapsed.exists():
            failures.append(f"py-spy on {name} exited with {spy.returncode}: {errors[name][1].decode()[-2000:]}")
            continue
        command = " ".join(record_command("py-spy", f"<{name}'s pid>", collapsed.relative_to(directory)))
        profile = reduce_stacks(collapsed.read_text().splitlines())
        (directory / f"{name}.md").write_text(summary(name, profile, seconds, command))
    if failures:  # after the others' tables are written
        raise RuntimeError("\n".join(failures))
