import email
import email.policy
from email.message import EmailMessage

from alerting.producer.alerts import build_alert
from alerting.sender.email_message import DIGEST_LISTED, render_digest, render_email


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_renders_a_standard_plain_text_email() -> None:
    alert = build_alert("CRITICAL", "db", "down", event_ts="2026-11-24T10:00:00Z", context={"host": "db-1"})
    raw = render_email("0b6f2c1e-0000-4000-8000-000000000001", "alerts@alerting.local", ["a@x.io", "b@x.io"],
                       alert, ["r1", "r2"])
    mail = parsed(raw)
    assert b"\r\n\r\n" in raw and all(line.endswith(b"\r") or not line for line in raw.split(b"\n")[:-1])
    assert mail["Subject"] == "[CRITICAL] db: down"
    assert mail["From"] == "alerts@alerting.local"
    assert mail["To"] == "a@x.io, b@x.io"
    assert mail["Message-ID"] == "<0b6f2c1e-0000-4000-8000-000000000001@alerting.local>"
    assert mail["Date"].datetime is not None
    assert mail["Content-Transfer-Encoding"] == "7bit"
    body = mail.get_content()
    assert "Time:      2026-11-24T10:00:00+00:00" in body
    assert "  host = db-1" in body
    assert body.rstrip().endswith("Matched rules: r1, r2")


def test_non_ascii_survives_and_control_characters_cannot_inject_headers() -> None:
    alert = build_alert("HIGH", "base de données", "disque plein")
    alert.name += "\r\nBcc: victim@evil.example"  # as a producer that checks nothing may send it
    mail = parsed(render_email("n1", "alerts@alerting.local", ["a@x.io"], alert, ["r1"]))
    assert mail["Subject"] == "[HIGH] base de données: disque plein Bcc: victim@evil.example"
    assert mail["Bcc"] is None
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Source:    base de données" in mail.get_content()


def test_long_values_are_cut_and_folded() -> None:
    alert = build_alert("LOW", "s" * 256, "n" * 256, context={"long": "x" * 2048})
    raw = render_email("n1", "alerts@alerting.local", ["a@x.io"], alert, ["r1"])
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    mail = parsed(raw)
    assert len(mail["Subject"]) <= 400
    assert "x" * 2048 in mail.get_content()


def test_a_digest_lists_its_alerts_and_counts_them_in_its_subject() -> None:
    alerts = ([build_alert("HIGH", "db", "disk_full", event_ts="2026-11-24T10:00:00Z") for _ in range(33)]
              + [build_alert("CRITICAL", source, "down") for source in ("web", "api", "cache", "queue")])
    members = [(alert, ("r1",)) for alert in alerts]
    mail = parsed(render_digest("d1", "alerts@alerting.local", ["a@x.io"], members))
    assert mail["Subject"] == "[CRITICAL] 37 alerts: db/disk_full and 4 others"
    assert mail["Message-ID"] == "<d1@alerting.local>"
    assert mail["X-Digest-Id"] == "d1"
    body = mail.get_content()
    assert body.count("[HIGH] db/disk_full  2026-11-24T10:00:00+00:00  alert ") == 33
    assert "[CRITICAL] queue/down" in body


def test_a_digest_of_one_and_a_digest_beyond_the_listed_ones() -> None:
    one = parsed(render_digest("d1", "s@x.io", ["a@x.io"], [(build_alert("LOW", "db", "disk"), ("r1",))]))
    assert one["Subject"] == "[LOW] 1 alert: db/disk"
    assert one.get_content().startswith("1 alert, in the order they were recorded:\r\n")
    many = [(build_alert("LOW", "db", f"check-{n}"), ("r1",)) for n in range(DIGEST_LISTED + 7)]
    body = parsed(render_digest("d2", "s@x.io", ["a@x.io"], many)).get_content()
    assert body.count("[LOW] db/check-") == DIGEST_LISTED
    assert body.rstrip().endswith("... and 7 more: alertctl notification list --digest d2")
    two = parsed(render_digest("d2", "s@x.io", ["a@x.io"], many[:2]))
    assert two["Subject"] == "[LOW] 2 alerts: db/check-0 and 1 other"
