"""alertctl against a real rule-service (in-process gRPC server, real Postgres)."""

import asyncio
import json
import uuid

from click.testing import CliRunner, Result

from alerting.cli.main import cli
from alerting.common.settings import Settings
from alerting.producer.alerts import build_alert
from alerting.rule_service.main import RuleServiceSettings, run
from alerting.testsupport.services import fetch, free_port, running, wait_for_port


async def alertctl(address: str, *args: str) -> Result:
    # The CLI blocks on gRPC; the server runs on this test's event loop.
    return await asyncio.to_thread(CliRunner().invoke, cli, ["--address", address, *args])


async def test_client_and_rule_commands(stack_settings: Settings) -> None:
    settings = RuleServiceSettings(**{**stack_settings.model_dump(), "grpc_port": free_port()})
    address = f"127.0.0.1:{settings.grpc_port}"
    async with running(run, settings):
        await wait_for_port(settings.grpc_port)
        created = await alertctl(address, "--json", "client", "create", "acme")
        assert created.exit_code == 0, created.output
        client_id = json.loads(created.output)[0]["client_id"]

        rule = await alertctl(address, "rule", "create", "--client", client_id, "--severity", "HIGH",
                              "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert rule.exit_code == 0, rule.output
        listed = await alertctl(address, "rule", "list", "--client", client_id)
        assert listed.exit_code == 0
        header, rule_line = listed.output.splitlines()[0], listed.output.splitlines()[2]
        assert header.split() == ["rule_id", "client_id", "severity", "source", "name", "emails", "enabled", "version"]
        assert rule_line.split()[2:] == ["HIGH", "db", "*", "ops@acme.io", "yes", "1"]

        bad = await alertctl(address, "rule", "create", "--client", client_id, "--severity", "URGENT",
                             "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert bad.exit_code == 1
        assert "INVALID_ARGUMENT: severity: unknown severity 'URGENT'" in bad.output


async def test_notification_commands_list_show_and_retry(stack_settings: Settings) -> None:
    settings = RuleServiceSettings(**{**stack_settings.model_dump(), "grpc_port": free_port()})
    address = f"127.0.0.1:{settings.grpc_port}"
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
    async with running(run, settings):
        await wait_for_port(settings.grpc_port)
        listed = await alertctl(address, "notification", "list", "--client", tenant, "--status", "failed")
        assert listed.exit_code == 0, listed.output
        header, _, line = listed.output.splitlines()
        assert header.split() == ["notification_id", "client_id", "alert_id", "status", "attempts", "created_at",
                                  "sent_at"]
        assert line.split()[:5] == [notification_id, tenant, "a-1", "FAILED", "1"]

        shown = await alertctl(address, "notification", "show", notification_id)
        assert shown.exit_code == 0, shown.output
        assert "failure: gone@x.io: 550 no such user" in shown.output
        assert shown.output.splitlines()[-1].split() == ["gone@x.io", "FAILED", "1", "550", "no", "such", "user"]

        retried = await alertctl(address, "--json", "notification", "retry", notification_id)
        assert retried.exit_code == 0, retried.output
        assert json.loads(retried.output)[0]["status"] == "NOTIFICATION_STATUS_PENDING"
        again = await alertctl(address, "notification", "retry", notification_id)
        assert again.exit_code == 1
        assert f"FAILED_PRECONDITION: notification_id: {notification_id} is PENDING, not FAILED" in again.output
