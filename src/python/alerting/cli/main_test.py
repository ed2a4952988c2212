"""alertctl against a real rule-service (in-process gRPC server, real Postgres)."""

import asyncio
import json

from click.testing import CliRunner, Result

from alerting.cli.main import cli
from alerting.common.settings import Settings
from alerting.rule_service.main import RuleServiceSettings, run
from alerting.testsupport.services import free_port, running, wait_for_port


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
