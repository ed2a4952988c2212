"""alertctl in a test: the CLI run in-process (click's CliRunner) against a rule-service
under test, with none of the caller's ALERTING_* client settings."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from click.testing import CliRunner, Result

from alerting.cli import main
from alerting.testsupport.calls import new_client, tenant_key
from alerting.testsupport.services import RuleServiceUnderTest, free_port

# The client-side settings alertctl reads from the environment, unset: only what a test gives counts.
CLIENT_ENVIRONMENT = ("ALERTING_API_KEY", "ALERTING_API_KEY_FILE", "ALERTING_TLS_CA_FILE",
                      "ALERTING_RULE_SERVICE_TLS", "ALERTING_RULE_SERVICE_ADDRESS")


async def run_alertctl(*args: str, env: dict[str, str] | None = None) -> Result:
    # The CLI blocks on gRPC; the server runs on the test's event loop.
    environment: dict[str, str | None] = {name: None for name in CLIENT_ENVIRONMENT}
    return await asyncio.to_thread(CliRunner().invoke, main.alertctl, list(args), env={**environment, **(env or {})})


async def alertctl(service: RuleServiceUnderTest, *args: str, key: str | None = None) -> Result:
    """alertctl with `service`'s address and CA, presenting `key` (default: the admin key; ""
    presents none) through ALERTING_API_KEY."""
    return await run_alertctl("--address", service.client_settings.rule_service_address,
                              "--ca-file", service.client_settings.tls_ca_file, *args,
                              env={"ALERTING_API_KEY": service.admin_key if key is None else key})


async def usage_error(*args: str) -> tuple[int, str, str]:
    """The exit code, stdout and last line of stderr of a command alertctl refuses before it
    calls anyone (the address given is one where nothing listens)."""
    refused = await run_alertctl("--address", f"127.0.0.1:{free_port()}", *args)
    return refused.exit_code, refused.stdout, refused.stderr.splitlines()[-1]


class Tenant(NamedTuple):
    """A client with a TENANT key, and another client."""

    client_id: str
    other_client_id: str
    key: str
    key_id: str


async def tenant_beside_another(service: RuleServiceUnderTest) -> Tenant:
    made = await tenant_key(service, await new_client(service))
    return Tenant(made.api_key.client_id, await new_client(service, "other"), made.key, made.api_key.key_id)


def key_id(key: str) -> str:
    """The public id in a key `ak_<key_id>.<secret>`."""
    return key.partition(".")[0].removeprefix("ak_")
