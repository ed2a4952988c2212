"""alertctl client against a real rule-service."""

from __future__ import annotations

import json

from alerting.testsupport.alertctl import alertctl, key_id
from alerting.testsupport.calls import new_client
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings


async def test_client_commands_create_get_list_rename_and_delete(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        admin_id = key_id(service.admin_key)
        created = await alertctl(service, "client", "create", "acme")
        assert (created.exit_code, created.stderr) == (0, ""), created.output
        header, _, row = created.stdout.splitlines()
        client_id = row.split()[0]
        assert (header.split(), row.split()) == (["client_id", "name", "version", "updated_by"],
                                                 [client_id, "acme", "1", admin_id])
        other = await new_client(service, "other")

        renamed = await alertctl(service, "client", "update", client_id, "--name", "acme corp", "--version", "1")
        assert renamed.exit_code == 0, renamed.output
        assert renamed.stdout.splitlines()[2].split() == [client_id, "acme", "corp", "2", admin_id]
        got = await alertctl(service, "--json", "client", "get", client_id)
        assert [(shown["name"], shown["version"]) for shown in json.loads(got.stdout)] == [("acme corp", "2")]

        page = await alertctl(service, "--json", "client", "list", "--page-size", "1")
        everything = await alertctl(service, "--json", "client", "list", "--all", "--page-size", "1")
        listed = [shown["client_id"] for shown in json.loads(everything.stdout)]
        assert (len(json.loads(page.stdout)), page.stderr) == (1, "(more: --all to list every page)\n")
        assert (everything.stderr, listed == sorted(listed), {client_id, other} <= set(listed)) == ("", True, True)

        stale = await alertctl(service, "client", "delete", client_id, "--version", "1")
        assert (stale.exit_code, stale.stderr) == (
            5, "Error: FAILED_PRECONDITION: expected_version: is 1, the current version is 2\n")
        deleted = await alertctl(service, "client", "delete", client_id, "--version", "2")
        assert (deleted.exit_code, deleted.stdout) == (0, f"deleted client {client_id} and its rules\n")
        gone = await alertctl(service, "client", "get", client_id)
        assert (gone.exit_code, gone.stderr) == (4, f"Error: NOT_FOUND: client_id: no client {client_id}\n")
