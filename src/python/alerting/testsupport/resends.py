"""What a sender killed at a failpoint may have sent twice, read from the records its kills
left (alerting.common.failpoints): for each email (a notification's or a digest's id), the
kills after its server had accepted it and before its record began (it goes out again),
and the kills while it was on the wire or its record was under way (the server may or may
not have taken it, the database may or may not have recorded it: nothing the sender could
know decides it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Resends:
    accepted: Counter[str]
    unsure: Counter[str]
    largest: int  # the most emails one kill left unrecorded or unsure


def read_resends(records: Path) -> Resends:
    accepted: Counter[str] = Counter()
    unsure: Counter[str] = Counter()
    largest = 0
    for record in records.iterdir():
        lines = record.read_text().split("\n")
        entries = [line.split(" ", 1) for line in lines if line]
        largest = max(largest, len(entries))
        for kind, email_id in entries:
            (accepted if kind == "accepted" else unsure)[email_id] += 1
    return Resends(accepted, unsure, largest)


def unexplained_copies(received: Counter[str], sent: Iterable[str], resends: Resends) -> dict[str, int]:
    """Message-ID → copies received, for each email SENT (by its notification's or digest's
    id) that did not arrive once plus once per kill that left it accepted (and at most once
    more per kill that left it unsure), and for every Message-ID of nothing SENT: {} when
    each copy is explained."""
    expected = {f"<{email_id}@alerting.local>": email_id for email_id in sent}
    unexplained = {message_id: copies for message_id, copies in received.items() if message_id not in expected}
    for message_id, email_id in expected.items():
        again = received[message_id] - 1 - resends.accepted[email_id]
        if not 0 <= again <= resends.unsure[email_id]:
            unexplained[message_id] = received[message_id]
    return unexplained
