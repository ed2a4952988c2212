"""alertctl policy against a real rule-service."""

from __future__ import annotations

import json
import uuid

import pytest

from alerting.testsupport.alertctl import alertctl, tenant_beside_another, usage_error
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings

CLIENT = str(uuid.uuid4())


async def test_policy_commands_get_set_and_delete_a_clients_policy(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id, other, tenant, tenant_id = await tenant_beside_another(service)

        default = await alertctl(service, "policy", "get", "--client", client_id, key=tenant)
        header, _, row = default.stdout.splitlines()
        assert header.split() == ["client_id", "group_by", "group_wait_seconds", "group_interval_seconds",
                                  "max_emails_per_hour", "is_default", "version", "updated_by"]
        assert row.split() == [client_id, "10", "300", "default", "yes", "0"]  # no group_by, no updated_by

        # Without --expected-version: the version read (0, none of its own yet) is replaced.
        first = await alertctl(service, "policy", "set", "--client", client_id, "--group-by", "source, severity",
                               "--group-wait", "30s", "--group-interval", "5m", "--max-emails-per-hour", "40",
                               key=tenant)
        assert first.exit_code == 0, first.output
        assert first.stdout.splitlines()[2].split() == [client_id, "severity,source", "30", "300", "40", "no", "1",
                                                        tenant_id]
        second = await alertctl(service, "--json", "policy", "set", "--client", client_id, "--group-wait", "0s",
                                "--group-interval", "1h", "--expected-version", "1", key=tenant)
        [policy] = json.loads(second.stdout)
        assert {key: value for key, value in policy.items() if key not in ("created_at", "updated_at")} == {
            "client_id": client_id, "group_by": [], "group_wait_seconds": 0, "group_interval_seconds": 3600,
            "max_emails_per_hour": 0, "version": "2", "is_default": False, "updated_by": tenant_id}

        stale = await alertctl(service, "policy", "set", "--client", client_id, "--group-wait", "0s",
                               "--group-interval", "1m", "--version", "1", key=tenant)
        assert (stale.exit_code, stale.stderr) == (
            5, "Error: FAILED_PRECONDITION: expected_version: is 1, the current version is 2\n")
        unknown = await alertctl(service, "policy", "set", "--client", client_id, "--group-by", "alert_id",
                                 "--group-wait", "0s", "--group-interval", "1m", key=tenant)
        assert (unknown.exit_code, unknown.stderr) == (
            3, "Error: INVALID_ARGUMENT: group_by: unknown field 'alert_id' (expected any of severity, source, name,"
               " rule)\n")
        too_long = await alertctl(service, "policy", "set", "--client", client_id, "--group-wait", "2h",
                                  "--group-interval", "1m", key=tenant)
        assert (too_long.exit_code, too_long.stderr) == (
            3, "Error: INVALID_ARGUMENT: group_wait_seconds: 7200 is not between 0 and 3600\n")
        theirs = await alertctl(service, "policy", "get", "--client", other, key=tenant)
        assert (theirs.exit_code, theirs.stderr) == (4, f"Error: NOT_FOUND: client_id: no client {other}\n")

        deleted = await alertctl(service, "policy", "delete", "--client", client_id, key=tenant)
        assert (deleted.exit_code, deleted.stdout) == (0, f"client {client_id} has the platform's default policy"
                                                          " again\n")
        again = await alertctl(service, "policy", "delete", "--client", client_id, key=tenant)
        assert (again.exit_code, again.stderr) == (
            4, f"Error: NOT_FOUND: client_id: client {client_id} has no notification policy of its own\n")
        back = await alertctl(service, "--json", "policy", "get", "--client", client_id)
        assert json.loads(back.stdout)[0]["is_default"] is True


@pytest.mark.parametrize("args, error", [
    (["--group-interval", "5m"], "Error: Missing option '--group-wait'."),
    (["--group-wait", "10", "--group-interval", "5m"],
     "Error: Invalid value for '--group-wait': a whole number and a unit, s, m, h or d (e.g. 90d or 12h)"),
    (["--group-wait", "0s", "--group-interval", "0m"],
     "Error: Invalid value for '--group-interval': more than zero (e.g. 90d or 12h)"),
    (["--group-wait", "0s", "--group-interval", "99999d"],
     "Error: Invalid value for '--group-interval': at most 2147483647 s"),
    (["--group-wait", "0s", "--group-interval", "1m", "--max-emails-per-hour", "-1"],
     "Error: Invalid value for '--max-emails-per-hour': -1 is not in the range 0<=x<=2147483647."),
])
async def test_a_policy_alertctl_cannot_read_is_a_usage_error(args: list[str], error: str) -> None:
    assert await usage_error("policy", "set", "--client", CLIENT, *args) == (2, "", error)
