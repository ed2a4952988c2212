"""What every alertctl command shares, against a real rule-service (in-process gRPC server
over TLS, real Postgres and Kafka) and stand-ins for what it does not do: the global
options, keys and TLS from the options or the environment, and how a failed call exits."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from alerting.cli import exit_codes
from alerting.testsupport.alertctl import alertctl, key_id, run_alertctl, usage_error
from alerting.testsupport.calls import new_client
from alerting.testsupport.services import fetch, free_port, rule_service
from alerting.testsupport.stack import StackSettings
from alerting.v1 import rule_service_pb2 as api

NO_KEY_HINT = ("Hint: no API key was given; give one with"
               " --api-key-file PATH or ALERTING_API_KEY_FILE (or ALERTING_API_KEY)")


async def test_output_json_and_its_alias(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        admin_id = key_id(service.admin_key)
        created = await alertctl(service, "--output", "json", "client", "create", "acme")
        assert (created.exit_code, created.stderr) == (0, "")
        [client] = json.loads(created.stdout)
        assert client == {"client_id": client["client_id"], "name": "acme", "version": "1",
                          "created_at": client["created_at"], "updated_at": client["created_at"],
                          "updated_by": admin_id}
        for flags in (["--output", "json"], ["--json"], ["--json", "--output", "json"]):
            got = await alertctl(service, *flags, "client", "get", client["client_id"])
            assert (got.exit_code, json.loads(got.stdout)) == (0, [client])

        rule = await alertctl(service, "--json", "rule", "create", "--client", client["client_id"], "--disabled",
                              "--severity", "LOW", "--source", "db", "--name", "*", "--email", "ops@acme.io")
        [created_rule] = json.loads(rule.stdout)
        # Every field, zero values too: a disabled rule says so.
        assert {key: value for key, value in created_rule.items() if key not in ("rule_id", "created_at",
                                                                                  "updated_at")} == {
            "client_id": client["client_id"], "severity": "LOW", "source": "db", "name": "*",
            "emails": ["ops@acme.io"], "receiver_ids": [], "enabled": False, "version": "1", "updated_by": admin_id}

        table = await alertctl(service, "--output", "table", "client", "get", client["client_id"])
        assert table.stdout.splitlines() == [
            "client_id                             name  version  updated_by",
            "------------------------------------  ----  -------  ------------",
            f"{client['client_id']}  acme  1        {admin_id}",
        ]
        conflicting = await alertctl(service, "--json", "--output", "table", "client", "list")
        assert (conflicting.exit_code, conflicting.stderr.splitlines()[-1]) == (
            2, "Error: --json is --output json: give one of them")


async def test_without_a_key_a_call_is_unauthenticated_with_a_hint(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        refused = await alertctl(service, "client", "list", key="")
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        exit_codes.EXIT_CODES[grpc.StatusCode.UNAUTHENTICATED], "",
        f"Error: UNAUTHENTICATED: no API key: send the metadata `authorization: Bearer <key>`\n{NO_KEY_HINT}\n")


async def test_tls_and_keys_from_the_environment(stack_settings: StackSettings, tmp_path: Path) -> None:
    async with rule_service(stack_settings) as service:
        address = service.client_settings.rule_service_address
        key_file = tmp_path / "admin.key"
        key_file.write_text(service.admin_key)
        whoami = await run_alertctl("whoami", env={
            "ALERTING_RULE_SERVICE_ADDRESS": address, "ALERTING_TLS_CA_FILE": service.client_settings.tls_ca_file,
            "ALERTING_API_KEY_FILE": str(key_file)})
        assert (whoami.exit_code, whoami.stdout.splitlines()[2].split()[:2]) == (
            0, [key_id(service.admin_key), "ADMIN"])

        unavailable = exit_codes.EXIT_CODES[grpc.StatusCode.UNAVAILABLE]
        # The server hangs up on a client that does not speak TLS.
        plaintext = await alertctl(service, "--plaintext", "--timeout", "5", "whoami")
        assert (plaintext.exit_code, plaintext.stdout, plaintext.stderr) == (unavailable, "", (
            f"Error: UNAVAILABLE: failed to connect to all addresses; last error: UNAVAILABLE: ipv4:{address}:"
            " Socket closed\n"))
        # Without --ca-file the client trusts the system's CAs, which did not sign the test certificate.
        untrusted = await run_alertctl("--address", address, "--timeout", "5", "whoami",
                                       env={"ALERTING_API_KEY": service.admin_key})
        assert (untrusted.exit_code, untrusted.stdout, untrusted.stderr) == (unavailable, "", (
            f"Error: UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: ipv4:{address}:"
            " Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
            "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK\n"))


@pytest.mark.parametrize("environment, error", [
    ({"ALERTING_API_KEY_FILE": "/nonexistent/key"},
     "Error: ALERTING_API_KEY_FILE: cannot read /nonexistent/key: No such file or directory"),
    ({"ALERTING_TLS_CA_FILE": "/nonexistent/ca.pem"},
     "Error: ALERTING_TLS_CA_FILE: cannot read /nonexistent/ca.pem: No such file or directory"),
    ({"ALERTING_RULE_SERVICE_TLS": "maybe"},
     "Error: ALERTING_RULE_SERVICE_TLS: Input should be a valid boolean, unable to interpret input"),
])
async def test_bad_client_settings_exit_2_and_show_no_values(environment: dict[str, str], error: str) -> None:
    secret = "ak_aaaaaaaaaaaa.a-secret-that-must-not-be-shown-anywhere-at-all"
    wrong = await run_alertctl("--address", f"127.0.0.1:{free_port()}", "whoami",
                               env={**environment, "ALERTING_REDIS_PASSWORD": secret})
    assert (wrong.exit_code, wrong.stdout, wrong.stderr.splitlines()[-1]) == (2, "", error)
    assert secret not in wrong.output


async def test_an_empty_key_file_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    wrong = await run_alertctl("--api-key-file", str(empty), "whoami", env={"ALERTING_API_KEY": "ak_x.y"})
    assert (wrong.exit_code, wrong.stdout, wrong.stderr.splitlines()[-1]) == (
        2, "", f"Error: Invalid value for '--api-key-file': {empty} is empty")


async def test_exit_codes_of_a_real_rule_service(stack_settings: StackSettings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = await new_client(service)

        invalid = await alertctl(service, "client", "get", "nope")
        assert (invalid.exit_code, invalid.stdout, invalid.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: client_id: not a UUID: 'nope'\n")

        unknown_id = str(uuid.uuid4())
        missing = await alertctl(service, "client", "get", unknown_id)
        assert (missing.exit_code, missing.stderr) == (4, f"Error: NOT_FOUND: client_id: no client {unknown_id}\n")

        stale = await alertctl(service, "client", "update", client_id, "--name", "acme corp", "--version", "7")
        assert (stale.exit_code, stale.stderr) == (
            5, "Error: FAILED_PRECONDITION: expected_version: is 7, the current version is 1\n")

        # More than the server accepts (max_request_bytes).
        limit = service.settings.max_request_bytes
        name = "a" * (limit + 1)
        too_big = await alertctl(service, "client", "create", name)
        size = api.CreateClientRequest(name=name).ByteSize()
        assert (too_big.exit_code, too_big.stderr) == (
            7, f"Error: RESOURCE_EXHAUSTED: SERVER: Received message larger than max ({size} vs. {limit})\n")

        # A row lock holds the update: the call gives up after --timeout, not the default 30 s.
        connection = await asyncpg.connect(stack_settings.database_url)
        try:
            async with connection.transaction():
                await connection.execute("SELECT 1 FROM clients WHERE client_id = $1 FOR UPDATE", client_id)
                started = time.monotonic()
                waited = await alertctl(service, "--timeout", "1.5", "client", "update", client_id,
                                        "--name", "acme corp", "--version", "1")
                elapsed = time.monotonic() - started
        finally:
            await connection.close()
        assert (waited.exit_code, waited.stderr) == (8, "Error: DEADLINE_EXCEEDED: Deadline Exceeded\n")
        assert 1.5 <= elapsed < 10

        # A server error (here: its table is gone) is INTERNAL to the client, with a reference
        # to the server's log: never the server's exception.
        await fetch(stack_settings, "ALTER TABLE clients RENAME TO clients_gone")
        broken = await alertctl(service, "client", "list")
        assert broken.exit_code == 1
        internal = r"Error: INTERNAL: internal error \(reference [0-9a-f]{16}\)\n"
        assert re.fullmatch(internal, broken.stderr), broken.stderr

    nobody = f"127.0.0.1:{free_port()}"
    unreachable = await run_alertctl("--address", nobody, "--timeout", "5", "client", "list")
    assert (unreachable.exit_code, unreachable.stderr) == (
        8, f"Error: UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: ipv4:{nobody}:"
           " Failed to connect to remote host: Connection refused\n")


class Refusing(grpc.GenericRpcHandler):
    """A stand-in server for the statuses the rule-service does not send (yet): every
    call ends with `code`."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        async def refuse(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            await context.abort(self.code, "refused by the stand-in")

        return grpc.unary_unary_rpc_method_handler(refuse)


@pytest.mark.parametrize("code, exit_code", [
    (grpc.StatusCode.ALREADY_EXISTS, 5),
    (grpc.StatusCode.UNIMPLEMENTED, 1),
])
async def test_exit_codes_of_statuses_the_rule_service_does_not_send(code: grpc.StatusCode, exit_code: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([Refusing(code)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        refused = await run_alertctl("--address", f"127.0.0.1:{port}", "--plaintext", "dlq", "replay", "alerts.new",
                                     "3")
    finally:
        await server.stop(None)
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        exit_code, "", f"Error: {code.name}: refused by the stand-in\n")


@pytest.mark.parametrize("args, error", [
    (["--timeout", "0", "client", "list"], "Error: Invalid value for '--timeout': 0.0 is not in the range x>0."),
    (["--output", "yaml", "client", "list"],
     "Error: Invalid value for '--output': 'yaml' is not one of 'table', 'json'."),
    (["--api-key-file", "/nonexistent/key", "whoami"],
     "Error: Invalid value for '--api-key-file': File '/nonexistent/key' does not exist."),
    (["--ca-file", "/nonexistent/ca.pem", "whoami"],
     "Error: Invalid value for '--ca-file': File '/nonexistent/ca.pem' does not exist."),
])
async def test_global_options_alertctl_cannot_read_are_usage_errors(args: list[str], error: str) -> None:
    assert await usage_error(*args) == (2, "", error)
