"""alertctl against a real rule-service (in-process gRPC server, real Postgres and Kafka)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import click
import grpc
import pytest
from click.testing import CliRunner, Result
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from alerting.cli import exit_codes
from alerting.cli.formatting import cell
from alerting.cli.main import cli
from alerting.common import topics
from alerting.common.kafka import dead_letter_message, make_producer, publish_all
from alerting.common.settings import Settings
from alerting.producer.alerts import build_alert
from alerting.rule_service.main import RuleServiceSettings, run
from alerting.testsupport.services import fetch, free_port, read, running, send, wait_for_port
from alerting.v1 import dead_letter_service_pb2 as dead_letters_api
from alerting.v1 import events_pb2
from alerting.v1 import rule_service_pb2 as api

WIDE = 1000  # terminal width for help text: no wrapping, so option help appears verbatim


async def alertctl(address: str, *args: str, **extra: Any) -> Result:
    # The CLI blocks on gRPC; the server runs on this test's event loop.
    return await asyncio.to_thread(CliRunner().invoke, cli, ["--address", address, *args], prog_name="alertctl",
                                   **extra)


@asynccontextmanager
async def rule_service(stack_settings: Settings) -> AsyncIterator[str]:
    """A real rule-service on a free port; its address."""
    settings = RuleServiceSettings(**{**stack_settings.model_dump(), "grpc_port": free_port()})
    async with running(run, settings):
        await wait_for_port(settings.grpc_port)
        yield f"127.0.0.1:{settings.grpc_port}"


async def test_client_and_rule_commands(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as address:
        created = await alertctl(address, "--output", "json", "client", "create", "acme")
        assert created.exit_code == 0, created.output
        client_id = json.loads(created.stdout)[0]["client_id"]

        rule = await alertctl(address, "rule", "create", "--client", client_id, "--severity", "HIGH",
                              "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert rule.exit_code == 0, rule.output
        listed = await alertctl(address, "rule", "list", "--client", client_id)
        assert listed.exit_code == 0
        header, rule_line = listed.stdout.splitlines()[0], listed.stdout.splitlines()[2]
        assert header.split() == ["rule_id", "client_id", "severity", "source", "name", "emails", "enabled", "version"]
        assert rule_line.split()[2:] == ["HIGH", "db", "*", "ops@acme.io", "yes", "1"]

        bad = await alertctl(address, "rule", "create", "--client", client_id, "--severity", "URGENT",
                             "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert (bad.exit_code, bad.stdout, bad.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: severity: unknown severity 'URGENT' (expected LOW, MEDIUM, HIGH,"
                   " CRITICAL or *)\n")


async def test_output_json_and_its_alias(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as address:
        created = await alertctl(address, "--output", "json", "client", "create", "acme")
        assert (created.exit_code, created.stderr) == (0, "")
        [client] = json.loads(created.stdout)
        assert client == {"client_id": client["client_id"], "name": "acme", "version": "1",
                          "created_at": client["created_at"], "updated_at": client["created_at"]}
        for flags in (["--output", "json"], ["--json"], ["--json", "--output", "json"]):
            got = await alertctl(address, *flags, "client", "get", client["client_id"])
            assert (got.exit_code, json.loads(got.stdout)) == (0, [client])

        rule = await alertctl(address, "--json", "rule", "create", "--client", client["client_id"], "--disabled",
                              "--severity", "LOW", "--source", "db", "--name", "*", "--email", "ops@acme.io")
        [created_rule] = json.loads(rule.stdout)
        # Every field, zero values too: a disabled rule says so.
        assert {key: value for key, value in created_rule.items() if key not in ("rule_id", "created_at",
                                                                                  "updated_at")} == {
            "client_id": client["client_id"], "severity": "LOW", "source": "db", "name": "*",
            "emails": ["ops@acme.io"], "enabled": False, "version": "1"}

        table = await alertctl(address, "--output", "table", "client", "get", client["client_id"])
        assert table.stdout.splitlines() == [
            "client_id                             name  version",
            "------------------------------------  ----  -------",
            f"{client['client_id']}  acme  1",
        ]
        conflicting = await alertctl(address, "--json", "--output", "table", "client", "list")
        assert (conflicting.exit_code, conflicting.stderr.splitlines()[-1]) == (
            2, "Error: --json is --output json: give one of them")


async def test_notification_commands_list_show_and_retry(stack_settings: Settings) -> None:
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
    async with rule_service(stack_settings) as address:
        listed = await alertctl(address, "notification", "list", "--client", tenant, "--status", "failed")
        assert listed.exit_code == 0, listed.output
        header, _, line = listed.stdout.splitlines()
        assert header.split() == ["notification_id", "client_id", "alert_id", "status", "attempts", "created_at",
                                  "sent_at"]
        assert line.split()[:5] == [notification_id, tenant, "a-1", "FAILED", "1"]

        shown = await alertctl(address, "notification", "show", notification_id)
        assert shown.exit_code == 0, shown.output
        assert "failure: gone@x.io: 550 no such user" in shown.stdout.splitlines()
        assert shown.stdout.splitlines()[-1].split() == ["gone@x.io", "FAILED", "1", "550", "no", "such", "user"]

        retried = await alertctl(address, "--output", "json", "notification", "retry", notification_id)
        assert retried.exit_code == 0, retried.output
        assert json.loads(retried.stdout)[0]["status"] == "NOTIFICATION_STATUS_PENDING"
        again = await alertctl(address, "notification", "retry", notification_id)
        assert (again.exit_code, again.stderr) == (
            5, f"Error: FAILED_PRECONDITION: notification_id: {notification_id} is PENDING, not FAILED\n")


# ---------------------------------------------------------------------- help
def every_command(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))
        else:
            yield (*path, name), command


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_command_and_option_explains_itself() -> None:
    commands = list(every_command(cli))
    assert [" ".join(path) for path, _ in commands] == [
        "", "client", "client create", "client delete", "client get", "client list", "client update",
        "dlq", "dlq list", "dlq replay",
        "notification", "notification list", "notification retry", "notification show",
        "rule", "rule create", "rule delete", "rule get", "rule list", "rule update",
    ]
    for path, command in commands:
        shown = CliRunner().invoke(cli, [*path, "--help"], prog_name="alertctl", terminal_width=WIDE,
                                   max_content_width=WIDE)
        assert (shown.exit_code, shown.stderr) == (0, ""), path
        assert shown.stdout.startswith(f"Usage: {' '.join(('alertctl', *path))} [OPTIONS]"), path
        assert command.help, f"{path} has no help"
        assert flat(command.help) in flat(shown.stdout), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts} has no help"
                assert param.help in shown.stdout, (path, param.opts)
            else:  # an argument: the command's help says what it is
                assert param.human_readable_name in command.help, (path, param.human_readable_name)


def test_the_top_level_help_ends_with_the_exit_code_table() -> None:
    shown = CliRunner().invoke(cli, ["--help"], prog_name="alertctl")
    assert shown.exit_code == 0
    assert shown.stdout.endswith("""
  Exit codes:

    0  success
    1  any other failure (UNKNOWN, INTERNAL, UNIMPLEMENTED, CANCELLED, ...)
    2  usage error: a bad or missing argument or option; nothing was sent
    3  INVALID_ARGUMENT: a value the server refused; the details name the field
    4  NOT_FOUND: no such id or dead-letter offset
    5  FAILED_PRECONDITION, ALREADY_EXISTS: wrong state, e.g. a stale --version
    6  UNAUTHENTICATED, PERMISSION_DENIED
    7  RESOURCE_EXHAUSTED: a quota, or a request or answer too large
    8  UNAVAILABLE, DEADLINE_EXCEEDED: unreachable, or no answer within --timeout
""")


# ---------------------------------------------------------------------- exit codes
def test_every_grpc_status_has_one_exit_code() -> None:
    assert {code.name: exit_codes.exit_code(code) for code in grpc.StatusCode} == {
        "OK": 0, "CANCELLED": 1, "UNKNOWN": 1, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 8, "NOT_FOUND": 4,
        "ALREADY_EXISTS": 5, "PERMISSION_DENIED": 6, "RESOURCE_EXHAUSTED": 7, "FAILED_PRECONDITION": 5,
        "ABORTED": 1, "OUT_OF_RANGE": 1, "UNIMPLEMENTED": 1, "INTERNAL": 1, "UNAVAILABLE": 8, "DATA_LOSS": 1,
        "UNAUTHENTICATED": 6,
    }


async def test_exit_codes_of_a_real_rule_service(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as address:
        created = await alertctl(address, "--json", "client", "create", "acme")
        client_id = json.loads(created.stdout)[0]["client_id"]

        invalid = await alertctl(address, "client", "get", "nope")
        assert (invalid.exit_code, invalid.stdout, invalid.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: client_id: not a UUID: 'nope'\n")

        unknown_id = str(uuid.uuid4())
        missing = await alertctl(address, "client", "get", unknown_id)
        assert (missing.exit_code, missing.stderr) == (4, f"Error: NOT_FOUND: client_id: no client {unknown_id}\n")

        stale = await alertctl(address, "client", "update", client_id, "--name", "acme corp", "--version", "7")
        assert (stale.exit_code, stale.stderr) == (
            5, "Error: FAILED_PRECONDITION: expected_version: is 7, the current version is 1\n")

        # More than the 4 MiB a gRPC server accepts by default.
        name = "a" * (5 * 1024 * 1024)
        too_big = await alertctl(address, "client", "create", name)
        size = api.CreateClientRequest(name=name).ByteSize()
        assert (too_big.exit_code, too_big.stderr) == (
            7, f"Error: RESOURCE_EXHAUSTED: SERVER: Received message larger than max ({size} vs. 4194304)\n")

        # A row lock holds the update: the call gives up after --timeout, not the default 30 s.
        connection = await asyncpg.connect(stack_settings.database_url)
        try:
            async with connection.transaction():
                await connection.execute("SELECT 1 FROM clients WHERE client_id = $1 FOR UPDATE", client_id)
                started = time.monotonic()
                waited = await alertctl(address, "--timeout", "1.5", "client", "update", client_id,
                                        "--name", "acme corp", "--version", "1")
                elapsed = time.monotonic() - started
        finally:
            await connection.close()
        assert (waited.exit_code, waited.stderr) == (8, "Error: DEADLINE_EXCEEDED: Deadline Exceeded\n")
        assert 1.5 <= elapsed < 10

        # A server error (here: its table is gone) is UNKNOWN to the client.
        await fetch(stack_settings, "ALTER TABLE clients RENAME TO clients_gone")
        broken = await alertctl(address, "client", "list")
        assert (broken.exit_code, broken.stderr) == (
            1, "Error: UNKNOWN: Unexpected <class 'asyncpg.exceptions.UndefinedTableError'>:"
               ' relation "clients" does not exist\n')

    nobody = f"127.0.0.1:{free_port()}"
    unreachable = await alertctl(nobody, "--timeout", "5", "client", "list")
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
    (grpc.StatusCode.UNAUTHENTICATED, 6),
    (grpc.StatusCode.PERMISSION_DENIED, 6),
    (grpc.StatusCode.UNIMPLEMENTED, 1),
])
async def test_exit_codes_of_statuses_the_rule_service_does_not_send(code: grpc.StatusCode, exit_code: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([Refusing(code)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        refused = await alertctl(f"127.0.0.1:{port}", "dlq", "replay", "alerts.new", "3")
    finally:
        await server.stop(None)
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        exit_code, "", f"Error: {code.name}: refused by the stand-in\n")


@pytest.mark.parametrize("args, error", [
    (["rule", "create", "--severity", "HIGH", "--source", "db", "--name", "*", "--email", "a@x.io"],
     "Error: Missing option '--client'."),
    (["--timeout", "0", "client", "list"], "Error: Invalid value for '--timeout': 0.0 is not in the range x>0."),
    (["--output", "yaml", "client", "list"],
     "Error: Invalid value for '--output': 'yaml' is not one of 'table', 'json'."),
    (["dlq", "replay", "alerts.new"], "Error: Missing argument 'OFFSET...'."),
    (["dlq", "list", "alerts.new", "--from", "-1"], "Error: Invalid value for '--from': -1 is not in the range x>=0."),
])
async def test_usage_errors_exit_2_and_send_nothing(args: list[str], error: str) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    wrong = await alertctl(nobody, *args)
    assert (wrong.exit_code, wrong.stdout, wrong.stderr.splitlines()[-1]) == (2, "", error)


# ---------------------------------------------------------------------- dead letters
def test_dead_letter_cells() -> None:
    listed = dead_letters_api.DeadLetter(key=b"a\nb\xff", source=dead_letters_api.DeadLetterSource(
        topic="p.alerts.new", partition=2, offset=9))
    assert [cell(listed, column) for column in ("key", "source", "timestamp", "replay_of")] == [
        "a\\x0ab\\xff", "p.alerts.new/2/9", "", ""]
    assert cell(dead_letters_api.DeadLetter(), "source") == ""


async def test_dlq_list_and_replay(stack_settings: Settings) -> None:
    matched_topic = stack_settings.topic(topics.ALERTS_MATCHED)
    dlq = stack_settings.topic(topics.dead_letter(topics.ALERTS_MATCHED))
    bad = [events_pb2.AlertMatched(schema_version=2).SerializeToString(), b"\xff not protobuf"]
    await send(stack_settings, topics.ALERTS_MATCHED, bad, keys=[b"key-1", b"key-2"])
    originals = sorted(await read(stack_settings, topics.ALERTS_MATCHED, 2), key=lambda record: record.value != bad[0])
    # As the aggregator dead-letters them.
    reasons = ["schema_version: unsupported 2 (expected 1)", "undecodable AlertMatched: Error parsing message"]
    producer = make_producer(stack_settings)
    await producer.start()
    try:
        await publish_all(producer, [dead_letter_message(record, reason)
                                     for record, reason in zip(originals, reasons, strict=True)])
    finally:
        await producer.stop()
    dead = await read(stack_settings, topics.dead_letter(topics.ALERTS_MATCHED), 2)

    def when(milliseconds: int) -> str:
        stamp = Timestamp()
        stamp.FromMilliseconds(milliseconds)
        return stamp.ToJsonString()

    rows = [[str(number), when(record.timestamp), f"{original.topic}/{original.partition}/{original.offset}",
             original.key.decode(), str(len(original.value)), reason]
            for number, (record, original, reason) in enumerate(zip(dead, originals, reasons, strict=True))]

    async with rule_service(stack_settings) as address:
        listed = await alertctl(address, "dlq", "list", "alerts.matched")
        assert (listed.exit_code, listed.stderr) == (0, "")
        header, rule, *lines = listed.stdout.splitlines()
        assert header.split() == ["offset", "timestamp", "source", "key", "value_size", "replay_of", "reason"]
        assert [line.split(None, 5) for line in lines] == rows

        first = await alertctl(address, "dlq", "list", "alerts.matched", "--limit", "1")
        assert [line.split(None, 5) for line in first.stdout.splitlines()[2:]] == rows[:1]
        assert first.stderr == "(more: --from 1; the last offset is 1)\n"
        second = await alertctl(address, "dlq", "list", "alerts.matched", "--from", "1", "--limit", "1")
        assert ([line.split(None, 5) for line in second.stdout.splitlines()[2:]], second.stderr) == (rows[1:], "")

        as_json = await alertctl(address, "--output", "json", "dlq", "list", "alerts.matched")
        expected = []
        for record, original, reason in zip(dead, originals, reasons, strict=True):
            listed_one = dead_letters_api.DeadLetter(
                offset=record.offset, reason=reason, key=original.key, value_size=len(original.value),
                source=dead_letters_api.DeadLetterSource(
                    topic=original.topic, partition=original.partition, offset=original.offset))
            listed_one.timestamp.FromMilliseconds(record.timestamp)
            expected.append(MessageToDict(listed_one, preserving_proto_field_name=True,
                                          always_print_fields_with_no_presence=True))
        assert json.loads(as_json.stdout) == expected
        assert expected[1]["key"] == "a2V5LTI=" and expected[1]["replay_of"] == ""  # base64 of key-2; every field

        replayed = await alertctl(address, "dlq", "replay", "alerts.matched", "1", "1")
        assert (replayed.exit_code, replayed.stdout) == (0, f"replayed 1 to {matched_topic}: dead-letter offsets 1\n")
        replayed = await alertctl(address, "--output", "json", "dlq", "replay", "alerts.matched", "1")
        assert json.loads(replayed.stdout) == [{"replayed": 1, "offsets": ["1"], "topic": matched_topic}]
        on_topic = await read(stack_settings, topics.ALERTS_MATCHED, 4)
        replays = [(record.key, record.value, list(record.headers)) for record in on_topic if record.headers]
        assert replays == [(b"key-2", bad[1], [("dlq.replay_of", f"{dlq}/0/1".encode())])] * 2

        missing = await alertctl(address, "dlq", "replay", "alerts.matched", "0", "5")
        assert (missing.exit_code, missing.stderr) == (
            4, f"Error: NOT_FOUND: offsets: {dlq} has no dead letter at offset 5 (it holds offsets 0 to 1)\n")
        unknown = await alertctl(address, "dlq", "list", "alerts.matched.dlq")
        assert (unknown.exit_code, unknown.stderr) == (
            3, "Error: INVALID_ARGUMENT: topic: unknown 'alerts.matched.dlq' (expected one of alerts.new,"
               " rule.changed, alerts.matched, notifications.ready)\n")
    assert len(await read(stack_settings, topics.ALERTS_MATCHED, 4)) == 4  # the NOT_FOUND replay published nothing
