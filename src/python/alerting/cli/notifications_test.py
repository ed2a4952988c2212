"""alertctl notification against a real rule-service, over notification and digest rows
as the sender leaves them."""

from __future__ import annotations

import json
import uuid

from alerting.producer.alerts import build_alert
from alerting.testsupport.alertctl import alertctl, usage_error
from alerting.testsupport.calls import new_client
from alerting.testsupport.services import fetch, rule_service
from alerting.testsupport.stack import StackSettings


async def test_notification_commands_list_show_and_retry(stack_settings: StackSettings) -> None:
    tenant = str(uuid.uuid4())
    [row] = await fetch(
        stack_settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status, failure, attempts)"
        " VALUES ($1, 'a-1', $2, '{gone@x.io}', $3, 'FAILED', 'gone@x.io: 550 no such user', 1)"
        " RETURNING notification_id::text", tenant, [str(uuid.uuid4())],
        build_alert("HIGH", "db", "disk").SerializeToString())
    notification_id = row["notification_id"]
    await fetch(stack_settings, "INSERT INTO notification_recipients (notification_id, email, status, response,"
                                " attempts) VALUES ($1, 'gone@x.io', 'FAILED', '550 no such user', 1)", notification_id)
    async with rule_service(stack_settings) as service:
        listed = await alertctl(service, "notification", "list", "--client", tenant, "--status", "failed")
        assert listed.exit_code == 0, listed.output
        header, _, line = listed.stdout.splitlines()
        assert header.split() == list(NOTIFICATION_HEADER)
        assert line.split()[:5] == [notification_id, tenant, "a-1", "FAILED", "1"]

        shown = await alertctl(service, "notification", "show", notification_id)
        assert shown.exit_code == 0, shown.output
        assert "failure: gone@x.io: 550 no such user" in shown.stdout.splitlines()
        assert shown.stdout.splitlines()[-1].split() == ["gone@x.io", "FAILED", "1", "550", "no", "such", "user"]

        retried = await alertctl(service, "--output", "json", "notification", "retry", notification_id)
        assert retried.exit_code == 0, retried.output
        assert json.loads(retried.stdout)[0]["status"] == "NOTIFICATION_STATUS_PENDING"
        again = await alertctl(service, "notification", "retry", notification_id)
        assert (again.exit_code, again.stderr) == (
            5, f"Error: FAILED_PRECONDITION: notification_id: {notification_id} is PENDING, not FAILED\n")


NOTIFICATION_HEADER = ("notification_id", "client_id", "alert_id", "status", "attempts", "created_at", "sent_at",
                       "digest_id", "delivered_in", "silenced_by")


async def insert_notification(settings: StackSettings, client_id: str, alert_id: str, status: str,
                              digest_id: str | None = None, silenced_by: str | None = None) -> str:
    """A notification row as the sender leaves it: SENT ones with their sent_at, in a digest or alone."""
    [row] = await fetch(
        settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status, attempts, sent_at,"
        " digest_id, silenced_by)"
        " VALUES ($1, $2, $3, '{ops@x.io}', $4, $5, CASE WHEN $5 = 'SENT' THEN 1 ELSE 0 END,"
        " CASE WHEN $5 = 'SENT' THEN now() END, $6, $7) RETURNING notification_id::text",
        client_id, alert_id, [str(uuid.uuid4())], build_alert("HIGH", "db", "disk").SerializeToString(), status,
        digest_id, silenced_by)
    return str(row["notification_id"])


async def insert_digest(settings: StackSettings, client_id: str, status: str) -> str:
    [row] = await fetch(
        settings,
        "INSERT INTO digests (client_id, group_key, recipients, status, next_attempt_at, attempts, flushed_at,"
        " sent_at) VALUES ($1, 'ops@x.io', '{ops@x.io}', $2, now(), CASE WHEN $2 = 'SENT' THEN 1 ELSE 0 END,"
        " CASE WHEN $2 = 'SENT' THEN now() END, CASE WHEN $2 = 'SENT' THEN now() END) RETURNING digest_id::text",
        client_id, status)
    return str(row["digest_id"])


async def test_notification_commands_show_digests_deliveries_and_silences(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        muted = await alertctl(service, "--json", "silence", "add", "--client", client_id, "--duration", "1h",
                               "--comment", "maintenance")
        silence_id = json.loads(muted.stdout)[0]["silence_id"]
        sent_digest = await insert_digest(stack_settings, client_id, "SENT")
        await fetch(stack_settings, "INSERT INTO digest_recipients (digest_id, email, status, response, attempts)"
                                    " VALUES ($1, 'ops@x.io', 'SENT', '250 ok', 1)", sent_digest)
        open_digest = await insert_digest(stack_settings, client_id, "PENDING")
        first = await insert_notification(stack_settings, client_id, "a-1", "SENT", digest_id=sent_digest)
        second = await insert_notification(stack_settings, client_id, "a-2", "SENT", digest_id=sent_digest)
        alone = await insert_notification(stack_settings, client_id, "a-3", "SENT")
        silenced = await insert_notification(stack_settings, client_id, "a-4", "SILENCED", silenced_by=silence_id)
        waiting = await insert_notification(stack_settings, client_id, "a-5", "PENDING", digest_id=open_digest)

        in_digest = await alertctl(service, "notification", "list", "--client", client_id, "--digest", sent_digest)
        assert in_digest.exit_code == 0, in_digest.output
        header, _, *rows = in_digest.stdout.splitlines()
        assert header.split() == list(NOTIFICATION_HEADER)
        # created_at and sent_at (fields 5 and 6) are the database's clock.
        assert [row.split()[:5] + row.split()[7:] for row in rows] == [
            [second, client_id, "a-2", "SENT", "1", sent_digest, sent_digest],
            [first, client_id, "a-1", "SENT", "1", sent_digest, sent_digest]]

        muted_only = await alertctl(service, "notification", "list", "--client", client_id, "--status", "silenced")
        assert muted_only.exit_code == 0, muted_only.output
        [row] = muted_only.stdout.splitlines()[2:]
        # Never sent, in no digest: only created_at between attempts and silenced_by.
        assert (row.split()[:5], row.split()[6:]) == ([silenced, client_id, "a-4", "SILENCED", "0"], [silence_id])

        everything = await alertctl(service, "--json", "notification", "list", "--client", client_id)
        assert everything.exit_code == 0, everything.output
        assert [(n["notification_id"], n["status"], n["digest_id"], n["delivered_in"], n["silenced_by"])
                for n in json.loads(everything.stdout)] == [
            (waiting, "NOTIFICATION_STATUS_PENDING", open_digest, "", ""),
            (silenced, "NOTIFICATION_STATUS_SILENCED", "", "", silence_id),
            (alone, "NOTIFICATION_STATUS_SENT", "", alone, ""),
            (second, "NOTIFICATION_STATUS_SENT", sent_digest, sent_digest, ""),
            (first, "NOTIFICATION_STATUS_SENT", sent_digest, sent_digest, ""),
        ]

        shown = await alertctl(service, "notification", "show", first)
        assert shown.exit_code == 0, shown.output
        header, _, row, blank, *recipients = shown.stdout.splitlines()
        assert (header.split(), row.split()[:5], row.split()[7:], blank) == (
            list(NOTIFICATION_HEADER), [first, client_id, "a-1", "SENT", "1"], [sent_digest, sent_digest], "")
        # Sent in a digest: its recipients' outcomes are the digest's.
        assert [line.split() for line in recipients] == [
            ["email", "status", "attempts", "response"], ["--------", "------", "--------", "--------"],
            ["ops@x.io", "SENT", "1", "250", "ok"]]
        shown_alone = await alertctl(service, "--json", "notification", "show", alone)
        [alone_json] = json.loads(shown_alone.stdout)
        assert (alone_json["digest_id"], alone_json["delivered_in"], alone_json["silenced_by"]) == ("", alone, "")

        not_an_id = await alertctl(service, "notification", "list", "--digest", "d-1")
        assert (not_an_id.exit_code, not_an_id.stdout, not_an_id.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: digest_id: not a UUID: 'd-1'\n")


async def test_an_unknown_status_is_a_usage_error() -> None:
    assert await usage_error("notification", "list", "--status", "muted") == (
        2, "", "Error: Invalid value for '--status': 'muted' is not one of 'pending', 'sent', 'failed', 'silenced'.")
