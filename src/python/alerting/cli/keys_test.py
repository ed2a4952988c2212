"""alertctl key against a real rule-service."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from click.testing import Result

from alerting.cli import exit_codes
from alerting.testsupport.alertctl import alertctl, key_id, usage_error
from alerting.testsupport.calls import new_client
from alerting.testsupport.services import rule_service, wait_until
from alerting.testsupport.stack import StackSettings

REFUSED_KEY_HINT = ("Hint: the API key given was refused; give another with"
                    " --api-key-file PATH or ALERTING_API_KEY_FILE (or ALERTING_API_KEY)")


async def test_api_keys_create_list_whoami_and_revoke(stack_settings: StackSettings, tmp_path: Path) -> None:
    async with rule_service(stack_settings, api_key_cache_seconds=0.1) as service:
        admin_id = key_id(service.admin_key)
        client_id = await new_client(service)

        made = await alertctl(service, "key", "create", "--client", client_id, "--name", "ci")
        assert (made.exit_code, made.stderr) == (0, "Store the key now: it is not shown again.\n"), made.output
        header, _, row, blank, shown_key = made.stdout.splitlines()
        assert header.split() == ["key_id", "role", "client_id", "created_by", "created_at", "expires_at",
                                  "revoked_at", "name"]
        tenant_id = row.split()[0]
        assert (row.split()[1:4], row.split()[-1], blank) == (["TENANT", client_id, admin_id], "ci", "")
        assert shown_key.startswith(f"key: ak_{tenant_id}."), shown_key
        tenant_key = shown_key.removeprefix("key: ")
        key_file = tmp_path / "tenant.key"
        key_file.write_text(tenant_key + "\n")

        # --api-key-file wins over ALERTING_API_KEY (the admin key here).
        whoami = await alertctl(service, "--api-key-file", str(key_file), "--json", "whoami")
        [tenant] = json.loads(whoami.stdout)
        assert tenant == {"key_id": tenant_id, "role": "ROLE_TENANT", "client_id": client_id, "name": "ci",
                          "created_by": admin_id, "created_at": tenant["created_at"]}
        admin = await alertctl(service, "whoami")
        assert admin.stdout.splitlines()[2].split()[:3] == [admin_id, "ADMIN", "bootstrap"]

        # The tenant manages its client's rules, but not clients.
        rule = await alertctl(service, "--api-key-file", str(key_file), "--json", "rule", "create", "--client",
                              client_id, "--severity", "HIGH", "--source", "db", "--name", "*", "--email", "o@acme.io")
        assert rule.exit_code == 0, rule.output
        rule_id = json.loads(rule.stdout)[0]["rule_id"]
        got = await alertctl(service, "rule", "get", rule_id)
        header, _, row = got.stdout.splitlines()
        assert (header.split()[-1], row.split()[-1]) == ("updated_by", tenant_id)
        denied = await alertctl(service, "--api-key-file", str(key_file), "client", "create", "other")
        assert (denied.exit_code, denied.stdout, denied.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED], "",
            f"Error: PERMISSION_DENIED: creating a client needs an ADMIN key; this is a TENANT key ({tenant_id})\n")

        as_json = await alertctl(service, "--json", "key", "create", "--admin", "--name", "ops")
        [response] = json.loads(as_json.stdout)
        ops_key = response["key"]
        ops_id = key_id(ops_key)
        assert response["api_key"] == {"key_id": ops_id, "role": "ROLE_ADMIN", "client_id": "", "name": "ops",
                                       "created_by": admin_id, "created_at": response["api_key"]["created_at"]}
        assert (await alertctl(service, "whoami", key=ops_key)).stdout.splitlines()[2].split()[:2] == [ops_id, "ADMIN"]

        def listed(result: Result) -> list[str]:
            assert result.exit_code == 0, result.output
            return [line.split()[0] for line in result.stdout.splitlines()[2:]]

        assert listed(await alertctl(service, "key", "list")) == sorted([admin_id, tenant_id, ops_id])
        assert listed(await alertctl(service, "key", "list", "--client", client_id)) == [tenant_id]
        # A tenant sees its client's keys only.
        assert listed(await alertctl(service, "--api-key-file", str(key_file), "key", "list")) == [tenant_id]

        revoked = await alertctl(service, "--json", "key", "revoke", tenant_id)
        assert revoked.exit_code == 0, revoked.output
        [revoked_key] = json.loads(revoked.stdout)
        assert revoked_key == {**tenant, "revoked_at": revoked_key["revoked_at"]}
        assert listed(await alertctl(service, "key", "list", "--client", client_id)) == []
        assert listed(await alertctl(service, "key", "list", "--client", client_id, "--include-revoked")) == [
            tenant_id]

        async def refused() -> bool:
            return (await alertctl(service, "whoami", key=tenant_key)).exit_code != 0

        # The server trusts its cached check for api_key_cache_seconds (0.1 s here): poll.
        await wait_until(refused, 30, "the revoked key refused")
        gone = await alertctl(service, "--api-key-file", str(key_file), "whoami")
        assert (gone.exit_code, gone.stdout, gone.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.UNAUTHENTICATED], "",
            f"Error: UNAUTHENTICATED: unknown or revoked API key\n{REFUSED_KEY_HINT}\n")


async def test_keys_that_expire_show_when_and_only_admins_create_keys(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        before = datetime.now(UTC)
        within = await alertctl(service, "--json", "key", "create", "--client", client_id, "--expires-in", "90d")
        after = datetime.now(UTC)
        at = await alertctl(service, "key", "create", "--client", client_id, "--name", "ci",
                            "--expires-at", "2099-01-31T18:00:00+01:00")
        [made] = json.loads(within.stdout)
        expires = datetime.fromisoformat(made["api_key"]["expires_at"])
        assert before + timedelta(days=90) <= expires <= after + timedelta(days=90)
        header, _, row, _, _ = at.stdout.splitlines()
        assert (header.split()[5], row.split()[1], row.split()[5:]) == (
            "expires_at", "TENANT", ["2099-01-31T17:00:00Z", "ci"])
        listed = await alertctl(service, "key", "list", "--client", client_id)
        assert sorted(line.split()[5] for line in listed.stdout.splitlines()[2:]) == sorted(
            [made["api_key"]["expires_at"], "2099-01-31T17:00:00Z"])

        tenant_key = made["key"]
        by_tenant = await alertctl(service, "key", "create", "--client", client_id, key=tenant_key)
        assert (by_tenant.exit_code, by_tenant.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED],
            f"Error: PERMISSION_DENIED: creating a key needs an ADMIN key; this is a TENANT key"
            f" ({made['api_key']['key_id']})\n")
        past = await alertctl(service, "key", "create", "--admin", "--expires-at", "2001-01-01T00:00:00Z")
        assert (past.exit_code, past.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.INVALID_ARGUMENT],
            "Error: INVALID_ARGUMENT: expires_at: 2001-01-01T00:00:00+00:00 is not in the future\n")


@pytest.mark.parametrize("options, problem", [
    (("--expires-in", "90"), "Invalid value for '--expires-in': a whole number and a unit, s, m, h or d"
                             " (e.g. 90d or 12h)"),
    (("--expires-in", "-1d"), "Invalid value for '--expires-in': a whole number and a unit, s, m, h or d"
                              " (e.g. 90d or 12h)"),
    (("--expires-in", "0d"), "Invalid value for '--expires-in': more than zero (e.g. 90d or 12h)"),
    (("--expires-at", "tomorrow"), "Invalid value for '--expires-at': an ISO 8601 time, e.g. 2027-01-31T18:00:00Z"),
    (("--expires-at", "2027-01-31T18:00:00"),
     "Invalid value for '--expires-at': give the offset from UTC too, e.g. 2027-01-31T18:00:00Z"),
    (("--expires-in", "1d", "--expires-at", "2027-01-31T18:00:00Z"), "give --expires-in or --expires-at, not both"),
])
async def test_an_expiry_alertctl_cannot_read_is_a_usage_error(options: tuple[str, ...], problem: str) -> None:
    assert await usage_error("key", "create", "--admin", *options) == (2, "", f"Error: {problem}")


@pytest.mark.parametrize("roles", [("--name", "ci"), ("--admin", "--client", str(uuid.uuid4()))])
async def test_a_key_is_for_an_admin_or_for_one_client(roles: tuple[str, ...]) -> None:
    assert await usage_error("key", "create", *roles) == (
        2, "", "Error: give --admin or --client CLIENT_ID, one of them")
