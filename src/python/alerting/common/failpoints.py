"""Crash injection for the at-least-once tests: die by SIGKILL at a named step.

ALERTING_FAILPOINT="<name>:<n>" kills the process the n-th time it reaches the step
called <name> (after_consume, after_db_write, after_publish, after_send, before_commit).
With ALERTING_FAILPOINT_DIR set, it first writes a record of the kill there, named
`<pid>.<name>`, listing what the process holds unfinished (as its `unfinished` sources
report it): a test then counts only the deaths that really happened at the failpoint,
and knows what each left undone. Unset in
production, a failpoint costs one comparison.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

_configured: tuple[str, int] | None = None
_hits = 0
_record_dir: Path | None = None
_unfinished: list[Callable[[], Iterable[str]]] = []


def _parse(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    return name, int(count or "1")


def configure(value: str | None, record_dir: str | None = None) -> None:
    global _configured, _hits, _record_dir
    _configured = _parse(value or "")
    _hits = 0
    _record_dir = Path(record_dir) if record_dir else None


def unfinished(source: Callable[[], Iterable[str]]) -> None:
    """Register what this process holds unfinished, for the record of a kill."""
    _unfinished.append(source)


def failpoint(name: str) -> None:
    """A step boundary."""
    global _hits
    if _configured is None or _configured[0] != name:
        return
    _hits += 1
    if _hits >= _configured[1]:
        if _record_dir is not None:
            record = _record_dir / f"{os.getpid()}.{name}"
            record.write_text("".join(f"{item}\n" for source in _unfinished for item in source()))
        os.kill(os.getpid(), signal.SIGKILL)


configure(os.environ.get("ALERTING_FAILPOINT"), os.environ.get("ALERTING_FAILPOINT_DIR"))
