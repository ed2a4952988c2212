"""Crash injection for the at-least-once tests: die by SIGKILL at a named step.

ALERTING_FAILPOINT="<name>:<n>" kills the process the n-th time it reaches the step
called <name> (after_consume, after_db_write, after_publish, before_commit). Unset in
production, a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_configured: tuple[str, int] | None = None
_hits = 0


def _parse(value: str) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    return name, int(count or "1")


def configure(value: str | None) -> None:
    global _configured, _hits
    _configured = _parse(value or "")
    _hits = 0


def failpoint(name: str) -> None:
    global _hits
    if _configured is None or _configured[0] != name:
        return
    _hits += 1
    if _hits >= _configured[1]:
        os.kill(os.getpid(), signal.SIGKILL)


configure(os.environ.get("ALERTING_FAILPOINT"))
