"""alertctl rule against a real rule-service (in-process gRPC server over TLS, real Postgres and Kafka)."""

from __future__ import annotations

import json

from alerting.testsupport.alertctl import alertctl, key_id, usage_error
from alerting.testsupport.calls import new_client
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings


async def test_rule_commands_create_list_and_refuse_an_unknown_severity(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)

        rule = await alertctl(service, "rule", "create", "--client", client_id, "--severity", "HIGH",
                              "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert rule.exit_code == 0, rule.output
        listed = await alertctl(service, "rule", "list", "--client", client_id)
        assert listed.exit_code == 0
        header, rule_line = listed.stdout.splitlines()[0], listed.stdout.splitlines()[2]
        assert header.split() == ["rule_id", "client_id", "severity", "source", "name", "emails", "receiver_ids",
                                  "enabled", "version", "updated_by"]
        assert rule_line.split()[2:] == ["HIGH", "db", "*", "ops@acme.io", "yes", "1", key_id(service.admin_key)]

        bad = await alertctl(service, "rule", "create", "--client", client_id, "--severity", "URGENT",
                             "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert (bad.exit_code, bad.stdout, bad.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: severity: unknown severity 'URGENT' (expected LOW, MEDIUM, HIGH,"
                   " CRITICAL or *)\n")


async def test_a_rule_needs_its_client() -> None:
    assert await usage_error("rule", "create", "--severity", "HIGH", "--source", "db", "--name", "*", "--email",
                             "a@x.io") == (2, "", "Error: Missing option '--client'.")


async def test_rule_commands_get_update_and_delete_at_a_version(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)
        created = await alertctl(service, "--json", "rule", "create", "--client", client_id, "--severity", "HIGH",
                                 "--source", "db", "--name", "*", "--email", "ops@acme.io")
        rule_id = json.loads(created.stdout)[0]["rule_id"]

        updated = await alertctl(service, "rule", "update", rule_id, "--severity", "*", "--source", "db", "--name",
                                 "disk_full", "--email", "a@acme.io", "--email", "b@acme.io", "--disabled",
                                 "--version", "1")
        assert updated.exit_code == 0, updated.output
        assert updated.stdout.splitlines()[2].split()[2:] == ["*", "db", "disk_full", "a@acme.io,b@acme.io", "no",
                                                              "2", key_id(service.admin_key)]
        got = await alertctl(service, "--json", "rule", "get", rule_id)
        assert [(shown["enabled"], shown["version"]) for shown in json.loads(got.stdout)] == [(False, "2")]

        stale = await alertctl(service, "rule", "delete", rule_id, "--version", "1")
        assert (stale.exit_code, stale.stderr) == (
            5, "Error: FAILED_PRECONDITION: expected_version: is 1, the current version is 2\n")
        deleted = await alertctl(service, "rule", "delete", rule_id)
        assert (deleted.exit_code, deleted.stdout) == (0, f"deleted rule {rule_id}\n")
        gone = await alertctl(service, "rule", "get", rule_id)
        assert (gone.exit_code, gone.stderr) == (4, f"Error: NOT_FOUND: rule_id: no rule {rule_id}\n")
