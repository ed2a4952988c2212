"""The check of a mailbox against the kill records: every copy explained, nothing more."""

from collections import Counter
from pathlib import Path

from alerting.testsupport.resends import read_resends, unexplained_copies


def mailbox(**copies: int) -> Counter[str]:
    return Counter({f"<{notification_id}@alerting.local>": count for notification_id, count in copies.items()})


def test_copies_are_explained_by_accepted_and_at_most_by_unsure_sends(tmp_path: Path) -> None:
    (tmp_path / "41.after_send").write_text("accepted a\nunsure b\nunsure c\n")
    resends = read_resends(tmp_path)
    assert resends.largest == 3
    assert unexplained_copies(mailbox(a=2, b=2, c=1, d=1), "abcd", resends) == {}
    # An accepted email that did not come again, a copy nothing explains, an email of no
    # SENT notification, and a SENT notification whose email never came.
    assert unexplained_copies(mailbox(a=1, b=3, c=1, d=2, e=1), "abcdf", resends) == {
        "<a@alerting.local>": 1, "<b@alerting.local>": 3, "<d@alerting.local>": 2, "<e@alerting.local>": 1,
        "<f@alerting.local>": 0}
