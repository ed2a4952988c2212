"""alertctl silence against a real rule-service."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import Result

from alerting.testsupport.alertctl import alertctl, tenant_beside_another, usage_error
from alerting.testsupport.calls import tenant_key
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings

CLIENT = str(uuid.uuid4())


async def test_silence_commands_add_list_get_and_expire(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id, other, tenant, tenant_id = await tenant_beside_another(service)
        stranger = (await tenant_key(service, other)).key

        added = await alertctl(service, "--json", "silence", "add", "--client", client_id, "--source", "db",
                               "--duration", "2h", "--comment", "disk swap, CHG-1234", key=tenant)
        assert added.exit_code == 0, added.output
        [active] = json.loads(added.stdout)
        assert {key: value for key, value in active.items() if key not in ("silence_id", "starts_at", "ends_at",
                                                                           "created_at")} == {
            "client_id": client_id, "severity": "*", "source": "db", "name": "*", "comment": "disk swap, CHG-1234",
            "created_by": tenant_id, "expired_by": "", "state": "SILENCE_STATE_ACTIVE"}
        starts, ends = (datetime.fromisoformat(active[field]) for field in ("starts_at", "ends_at"))
        assert ends - starts == timedelta(hours=2)

        later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        pending = await alertctl(service, "silence", "add", "--client", client_id, "--severity", "HIGH", "--name",
                                 "disk_full", "--starts-at", later.isoformat(), "--ends-at",
                                 (later + timedelta(hours=2)).isoformat(), "--comment", "maintenance", key=tenant)
        assert pending.exit_code == 0, pending.output
        header, _, row = pending.stdout.splitlines()
        assert header.split() == ["silence_id", "client_id", "state", "severity", "starts_at", "ends_at",
                                  "created_by", "expired_by", "source", "name", "comment"]
        pending_id = row.split()[0]
        later_text = later.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row.split()[1:] == [client_id, "PENDING", "HIGH", later_text,
                                   (later + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), tenant_id, "*",
                                   "disk_full", "maintenance"]

        def listed(result: Result) -> list[tuple[str, str]]:
            assert result.exit_code == 0, result.output
            return [(line.split()[0], line.split()[2]) for line in result.stdout.splitlines()[2:]]

        assert listed(await alertctl(service, "silence", "list", key=tenant)) == [
            (pending_id, "PENDING"), (active["silence_id"], "ACTIVE")]
        expired = await alertctl(service, "--json", "silence", "expire", active["silence_id"], key=tenant)
        [shown] = json.loads(expired.stdout)
        assert (shown["state"], shown["expired_by"], "expired_at" in shown) == ("SILENCE_STATE_EXPIRED", tenant_id,
                                                                                 True)
        again = await alertctl(service, "silence", "expire", active["silence_id"], key=tenant)
        assert (again.exit_code, again.stderr) == (
            5, f"Error: FAILED_PRECONDITION: silence_id: {active['silence_id']} is EXPIRED, not PENDING or ACTIVE\n")
        assert listed(await alertctl(service, "silence", "list", "--client", client_id)) == [(pending_id, "PENDING")]
        assert listed(await alertctl(service, "silence", "list", "--include-expired", key=tenant)) == [
            (pending_id, "PENDING"), (active["silence_id"], "EXPIRED")]
        got = await alertctl(service, "silence", "get", active["silence_id"])
        assert got.stdout.splitlines()[2].split()[2] == "EXPIRED"

        hidden = await alertctl(service, "silence", "get", pending_id, key=stranger)
        assert (hidden.exit_code, hidden.stderr) == (4, f"Error: NOT_FOUND: silence_id: no silence {pending_id}\n")
        assert listed(await alertctl(service, "silence", "list", "--include-expired", key=stranger)) == []
        lowercase = await alertctl(service, "silence", "add", "--client", client_id, "--severity", "high",
                                   "--duration", "1h", "--comment", "why", key=tenant)
        assert (lowercase.exit_code, lowercase.stderr) == (
            3, "Error: INVALID_ARGUMENT: severity: unknown severity 'high' (expected LOW, MEDIUM, HIGH, CRITICAL"
               " or *)\n")
        blank = await alertctl(service, "silence", "add", "--client", client_id, "--duration", "1h", "--comment", " ",
                               key=tenant)
        assert (blank.exit_code, blank.stderr) == (
            3, "Error: INVALID_ARGUMENT: comment: missing: say why the notifications are silenced\n")


@pytest.mark.parametrize("args, error", [
    (["--comment", "why"], "Error: give --duration or --ends-at, one of them"),
    (["--comment", "why", "--duration", "1h", "--ends-at", "2099-01-01T00:00:00Z"],
     "Error: give --duration or --ends-at, one of them"),
    (["--comment", "why", "--duration", "0h"],
     "Error: Invalid value for '--duration': more than zero (e.g. 90d or 12h)"),
    (["--comment", "why", "--ends-at", "2099-01-01T00:00:00"],
     "Error: Invalid value for '--ends-at': give the offset from UTC too, e.g. 2027-01-31T18:00:00Z"),
    (["--duration", "1h"], "Error: Missing option '--comment'."),
])
async def test_a_silence_alertctl_cannot_read_is_a_usage_error(args: list[str], error: str) -> None:
    assert await usage_error("silence", "add", "--client", CLIENT, *args) == (2, "", error)
