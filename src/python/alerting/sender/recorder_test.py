"""Group commit: decisions that arrive while a write is under way go together in the next."""

import asyncio
from collections.abc import Sequence

import pytest

from alerting.sender.outcomes import Decision, RecipientOutcome, RecipientStatus, Status
from alerting.sender.recorder import DecisionRecorder

SENT = Decision(Status.SENT, [RecipientOutcome("a@b.io", RecipientStatus.SENT, "250 ok")])
DEFERRED = Decision(Status.PENDING, [RecipientOutcome("a@b.io", RecipientStatus.DEFERRED, "451 later")])


class Writes:
    """The writes a recorder makes, each held until the test lets it finish."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_next: Exception | None = None

    async def write(self, decided: Sequence[tuple[str, Decision]]) -> None:
        self.batches.append([notification for notification, _ in decided])
        await self.release.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error


async def test_decisions_made_during_a_write_go_together_in_the_next() -> None:
    writes = Writes()
    recorder: DecisionRecorder[str] = DecisionRecorder(writes.write, str)
    first = recorder.submit("n1", SENT)
    assert recorder.queued() == {"n1"}  # submitted, not yet written: a crash now sends it again
    await asyncio.sleep(0)
    rest = [recorder.submit(f"n{n}", SENT) for n in range(2, 6)] + [recorder.submit("d6", DEFERRED)]
    await asyncio.sleep(0)
    assert writes.batches == [["n1"]] and not first.done()
    assert recorder.writing == {"n1"}  # what a crash now may or may not have recorded
    assert recorder.queued() == {"n2", "n3", "n4", "n5"}  # a deferred email was taken by no one
    writes.release.set()
    await asyncio.gather(first, *rest)
    assert writes.batches == [["n1"], ["n2", "n3", "n4", "n5", "d6"]]
    assert recorder.writer is None


async def test_a_decision_written_is_neither_queued_nor_being_written_before_its_caller_resumes() -> None:
    writes = Writes()
    writes.release.set()
    recorder: DecisionRecorder[str] = DecisionRecorder(writes.write, str)
    first = recorder.submit("n1", SENT)
    while not first.done():
        await asyncio.sleep(0)
    # The write is over; what a crash would list now must not include it.
    assert recorder.queued() == set() and recorder.writing == set()
    await first


async def test_a_failed_write_fails_its_own_decisions_only() -> None:
    writes = Writes()
    recorder: DecisionRecorder[str] = DecisionRecorder(writes.write, str)
    writes.fail_next = ConnectionRefusedError("postgres is down")
    failing = [recorder.submit(f"n{n}", SENT) for n in range(2)]
    await asyncio.sleep(0)
    writes.release.set()
    for task in failing:
        with pytest.raises(ConnectionRefusedError):
            await task
    await recorder.submit("n9", SENT)
    assert writes.batches == [["n0", "n1"], ["n9"]]
