"""Recording each attempt's decision as soon as it is made, so that a sender killed at any
instruction has at most one accepted email per SMTP connection unrecorded (what a restart
sends again), yet without one statement per email: the decisions that arrive while a write
is under way go together in the next one (group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from alerting.sender.outcomes import Decision, any_sent

C = TypeVar("C")


class DecisionRecorder(Generic[C]):
    """Records the decisions about what `C` stands for (a claimed notification or digest,
    named by `key`) with `write`, many in one call."""

    def __init__(self, write: Callable[[Sequence[tuple[C, Decision]]], Awaitable[None]], key: Callable[[C], str]
                 ) -> None:
        self.write = write
        self.key = key
        self.waiting: list[tuple[tuple[C, Decision], asyncio.Future[None]]] = []
        self.writer: asyncio.Task[None] | None = None
        # Of the emails some recipient took, those the write under way records: a crash now
        # may or may not have recorded them.
        self.writing: set[str] = set()

    def submit(self, claimed: C, decision: Decision) -> asyncio.Future[None]:
        """Queues the decision for the next write, at once (before the caller yields); the
        future is done once it is written, or holds what the write raised."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(((claimed, decision), written))
        if self.writer is None:
            self.writer = asyncio.create_task(self.write_while_waiting())
        return written

    def queued(self) -> set[str]:
        """Of the emails some recipient took, those whose record has not begun: a crash now
        sends them again. A decision written is in neither this nor `writing`, even before
        its caller resumes."""
        return {self.key(claimed) for (claimed, decision), _ in self.waiting if any_sent(decision.recipients)}

    async def write_while_waiting(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                self.writing = {self.key(claimed) for (claimed, decision), _ in batch if any_sent(decision.recipients)}
                try:
                    await self.write([decided for decided, _ in batch])
                except Exception as error:
                    for _, written in batch:
                        if not written.done():
                            written.set_exception(error)
                except BaseException:  # cancelled: so are those waiting for this write
                    for _, written in batch:
                        written.cancel()
                    raise
                else:
                    for _, written in batch:
                        if not written.done():
                            written.set_result(None)
        finally:
            self.writer = None
            self.writing = set()
