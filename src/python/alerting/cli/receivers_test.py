"""alertctl receiver, and rules that name receivers, against a real rule-service."""

from __future__ import annotations

import json

from alerting.testsupport.alertctl import alertctl, tenant_beside_another
from alerting.testsupport.calls import tenant_key
from alerting.testsupport.services import rule_service
from alerting.testsupport.stack import StackSettings


async def test_receiver_commands_add_list_rotate_name_in_a_rule_and_remove(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id, other, tenant, _ = await tenant_beside_another(service)
        stranger = (await tenant_key(service, other)).key

        added = await alertctl(service, "receiver", "add", "--client", client_id, "--name", "ops",
                               "--webhook", "http://127.0.0.1:8091/hooks/ops", key=tenant)
        assert added.exit_code == 0, added.output
        secret_line = added.stdout.splitlines()[-1]
        assert secret_line.startswith("signing secret: whsec_")
        assert "it is not shown again" in added.stderr
        receiver_id = added.stdout.splitlines()[2].split()[0]

        chat = await alertctl(service, "--json", "receiver", "add", "--client", client_id, "--name", "chat",
                              "--slack", "https://hooks.slack.com/services/T0/B0/x", key=tenant)
        [created] = json.loads(chat.stdout)
        assert (created["receiver"]["kind"], created["signing_secret"]) == ("RECEIVER_KIND_SLACK", "")

        rotated = await alertctl(service, "receiver", "rotate-secret", receiver_id, key=tenant)
        assert rotated.exit_code == 0 and rotated.stdout.splitlines()[-1] != secret_line

        listed = await alertctl(service, "--json", "receiver", "list", key=tenant)
        assert sorted(item["name"] for item in json.loads(listed.stdout)) == ["chat", "ops"]
        assert (await alertctl(service, "receiver", "get", receiver_id, key=stranger)).exit_code == 4  # NOT_FOUND

        both = await alertctl(service, "receiver", "add", "--client", client_id, "--name", "x", key=tenant)
        assert both.exit_code == 2 and "give --webhook URL, --slack URL or --email ADDRESS" in both.stderr

        team = await alertctl(service, "--json", "receiver", "add", "--client", client_id, "--name", "team",
                              "--email", "a@x.io", "--email", "b@x.io", key=tenant)
        [made_team] = json.loads(team.stdout)
        assert (made_team["receiver"]["kind"], made_team["receiver"]["addresses"]) == (
            "RECEIVER_KIND_EMAIL", ["a@x.io", "b@x.io"])
        team_id = made_team["receiver"]["receiver_id"]
        moved = await alertctl(service, "--json", "receiver", "update", team_id, "--email", "c@x.io",
                               "--version", "1", key=tenant)
        assert [(item["addresses"], item["version"]) for item in json.loads(moved.stdout)] == [(["c@x.io"], "2")]
        stale = await alertctl(service, "receiver", "update", team_id, "--email", "d@x.io", "--version", "1",
                               key=tenant)
        assert stale.exit_code == 5 and "expected_version: is 1, the current version is 2" in stale.stderr

        rule = await alertctl(service, "--json", "rule", "create", "--client", client_id, "--severity", "HIGH",
                              "--source", "db", "--name", "*", "--receiver", receiver_id, key=tenant)
        assert rule.exit_code == 0, rule.output
        [made] = json.loads(rule.stdout)
        assert made["receiver_ids"] == [receiver_id] and made.get("emails", []) == []
        refused = await alertctl(service, "receiver", "remove", receiver_id, key=tenant)
        assert refused.exit_code == 5 and f"rules name {receiver_id}: {made['rule_id']}" in refused.stderr
        assert (await alertctl(service, "rule", "delete", made["rule_id"], key=tenant)).exit_code == 0
        removed = await alertctl(service, "receiver", "remove", receiver_id, key=tenant)
        assert (removed.exit_code, removed.stdout) == (0, f"deleted receiver {receiver_id}\n")
