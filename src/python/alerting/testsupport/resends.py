"""What a sender killed at a failpoint may have sent twice, read from the records its kills
left (alerting.common.failpoints): for each notification, the kills after its server had
accepted its email and before its outcome was recorded (the email goes out again), and the
kills while its email was on the wire (the server may or may not have taken it: nothing
the sender could know decides it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Resends:
    accepted: Counter[str]
    unanswered: Counter[str]
    largest: int  # the most notifications one kill left unrecorded or unanswered


def read_resends(records: Path) -> Resends:
    accepted: Counter[str] = Counter()
    unanswered: Counter[str] = Counter()
    largest = 0
    for record in records.iterdir():
        lines = record.read_text().split("\n")
        entries = [line.split(" ", 1) for line in lines if line]
        largest = max(largest, len(entries))
        for kind, notification_id in entries:
            (accepted if kind == "accepted" else unanswered)[notification_id] += 1
    return Resends(accepted, unanswered, largest)


def unexplained_copies(received: Counter[str], sent: Iterable[str], resends: Resends) -> dict[str, int]:
    """Message-ID → copies received, for each SENT notification whose email did not arrive
    once plus once per kill that left it accepted (and at most once more per kill that left
    it unanswered), and for every Message-ID of no SENT notification: {} when each copy is
    explained."""
    expected = {f"<{notification_id}@alerting.local>": notification_id for notification_id in sent}
    unexplained = {message_id: copies for message_id, copies in received.items() if message_id not in expected}
    for message_id, notification_id in expected.items():
        again = received[message_id] - 1 - resends.accepted[notification_id]
        if not 0 <= again <= resends.unanswered[notification_id]:
            unexplained[message_id] = received[message_id]
    return unexplained
