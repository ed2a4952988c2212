"""alertctl grant against a real rule-service."""

from __future__ import annotations

import json

import grpc

from alerting.cli import exit_codes
from alerting.testsupport.alertctl import alertctl, key_id
from alerting.testsupport.calls import new_client, tenant_key
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings


async def test_grant_commands_add_list_and_remove_and_only_admins_grant(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        admin_id = key_id(service.admin_key)
        client_id = await new_client(service)
        tenant = await tenant_key(service, client_id)
        exact = await alertctl(service, "grant", "add", "--client", client_id, "db")
        prefix = await alertctl(service, "--json", "grant", "add", "--client", client_id, "--prefix", "team-a.")
        assert (exact.exit_code, prefix.exit_code) == (0, 0), exact.output + prefix.output
        header, _, row = exact.stdout.splitlines()
        assert (header.split(), row.split()[:3], row.split()[4]) == (
            ["client_id", "prefix", "created_by", "created_at", "source"], [client_id, "no", admin_id], "db")
        [granted] = json.loads(prefix.stdout)
        assert {key: value for key, value in granted.items() if key != "created_at"} == {
            "client_id": client_id, "source": "team-a.", "prefix": True, "created_by": admin_id}

        by_tenant = await alertctl(service, "grant", "add", "--client", client_id, "web", key=tenant.key)
        assert (by_tenant.exit_code, by_tenant.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED],
            f"Error: PERMISSION_DENIED: granting a source needs an ADMIN key; this is a TENANT key"
            f" ({tenant.api_key.key_id})\n")
        own = await alertctl(service, "grant", "list", key=tenant.key)
        assert [(line.split()[1], line.split()[-1]) for line in own.stdout.splitlines()[2:]] == [
            ("no", "db"), ("yes", "team-a.")]
        starred = await alertctl(service, "grant", "add", "--client", client_id, "team-*")
        assert (starred.exit_code, starred.stderr) == (
            3, "Error: INVALID_ARGUMENT: source: 'team-*' holds '*': grant an exact source, or a prefix (prefix set)"
               " for every source that starts with it\n")

        removed = await alertctl(service, "grant", "remove", "--client", client_id, "--prefix", "team-a.")
        assert (removed.exit_code, removed.stdout) == (0, f"revoked the prefix 'team-a.' from client {client_id}\n")
        again = await alertctl(service, "grant", "remove", "--client", client_id, "--prefix", "team-a.")
        assert (again.exit_code, again.stderr) == (
            4, f"Error: NOT_FOUND: source: client {client_id} has no grant of the prefix 'team-a.'\n")
        left = await alertctl(service, "--json", "grant", "list", "--client", client_id)
        assert [(grant["source"], grant["prefix"]) for grant in json.loads(left.stdout)] == [("db", False)]
