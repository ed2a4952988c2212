"""Every alertctl and grpcurl example of the docs runs, as written, against a real
rule-service (TLS, API keys, Postgres and Kafka), and succeeds.

The docs' convention (docs/operations.md, "The shell the examples assume"): the rule-service,
its CA and the admin key come from ALERTING_RULE_SERVICE_ADDRESS, ALERTING_TLS_CA_FILE and
ALERTING_API_KEY_FILE, `alertctl` is a shell function, and ids are shell variables
($CLIENT_ID, ...). This test gives each example a shell like that: its own rule-service, and
a client, rule, grant, policy, silence, TENANT key, digest and FAILED notification made for
that example alone, so that what one example changes (a client deleted) no other sees.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from alerting.common.grpc_client import aio_channel
from alerting.producer.alerts import build_alert
from alerting.testsupport.services import fetch, send, spawn_rule_service, stop_process
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    notification_policy_service_pb2,
    notification_policy_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
    silence_service_pb2,
    silence_service_pb2_grpc,
)

# The pages a newcomer reads. docs/overview.md is left out: it speaks to tenants, with ids
# written as letters (`--client C`), not as the shell variables these examples use.
DOCS = [Path("README.md"), *sorted(path for path in Path("docs").rglob("*.md") if path != Path("docs/overview.md"))]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# The README runs alertctl through Pants, which a test cannot: the same command, run directly.
ALERTCTL_THROUGH_PANTS = "./pants run src/python/alerting/cli:alertctl --"
GRPCURL_INSTALL = re.compile(r"go install (github\.com/fullstorydev/grpcurl/cmd/grpcurl@v[0-9.]+)")


def examples(markdown: str) -> list[str]:
    """The alertctl and grpcurl commands of the shell blocks, each on one line: continuation
    lines joined, any variable assignments before the command kept."""
    commands = []
    for block in SHELL_BLOCK.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().replace(ALERTCTL_THROUGH_PANTS, "alertctl")
            words = [word for word in shlex.split(line, comments=True) if not ASSIGNMENT.match(word)]
            if words and words[0] in ("alertctl", "grpcurl"):
                commands.append(line)
    return commands


def test_examples_are_the_commands_of_shell_blocks_whole() -> None:
    markdown = "\n".join([
        "```bash",
        "alertctl client list   # a comment",
        "KEY=\"$(cat \"$F\")\" grpcurl -H 'a: b' \\",
        "  -d '{}' host:1 list",
        "deploy/platform up",
        "./pants run src/python/alerting/cli:alertctl -- whoami",
        "alertctl() { true; }",
        "```",
        "```",
        "alertctl rule list",
        "```",
        "```sql",
        "alertctl is not SQL",
        "```",
    ])
    assert examples(markdown) == [
        "alertctl client list   # a comment",
        "KEY=\"$(cat \"$F\")\" grpcurl -H 'a: b'    -d '{}' host:1 list",
        "alertctl whoami",
    ]


def test_the_runbook_and_the_readme_show_both_tools() -> None:
    runbook, readme = examples(Path("docs/operations.md").read_text()), examples(Path("README.md").read_text())
    assert any(command.startswith("alertctl dlq replay") for command in runbook)
    assert any(" grpcurl " in command for command in runbook)
    assert "alertctl whoami" in readme


def grpcurl() -> Path:
    """The grpcurl the runbook says to install, installed as it says into the tools cache
    (once per version), for a machine that has Go."""
    [module] = set(GRPCURL_INSTALL.findall(Path("docs/operations.md").read_text()))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alerting-tools"
    folder = cache / f"grpcurl-{module.rpartition('@')[2]}"
    if not (folder / "grpcurl").exists():
        # The test sandbox may run with a bare PATH; Go's own installer puts it in /usr/local/go/bin.
        go = shutil.which("go", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/go/bin", "/usr/bin"]))
        if go is None:
            pytest.fail("Go is not installed: the docs' grpcurl examples need `go install " + module + "`")
        installed = subprocess.run([go, "install", module], env={**os.environ, "GOBIN": str(folder),
                                   "GOFLAGS": "-modcacherw"}, capture_output=True, text=True, timeout=540)
        assert installed.returncode == 0, f"go install {module} failed:\n{installed.stderr}"
    return folder


async def one_of_each(settings: StackSettings, client_settings: StackSettings, number: int) -> dict[str, str]:
    """The ids an example may name, made afresh: a client granted `db`, with a rule, a
    policy, an active silence and a TENANT key; a digest and a FAILED notification in it."""
    async with aio_channel(client_settings) as channel:
        rules = rule_service_pb2_grpc.RuleServiceStub(channel)
        client = await rules.CreateClient(rule_service_pb2.CreateClientRequest(name=f"example-{number}"))
        await rules.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(client_id=client.client_id,
                                                                                source="db"))
        rule = await rules.CreateRule(rule_service_pb2.CreateRuleRequest(
            client_id=client.client_id, severity="HIGH", source="db", name="*", emails=["oncall@acme.io"]))
        await notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(channel).SetNotificationPolicy(
            notification_policy_service_pb2.SetNotificationPolicyRequest(
                client_id=client.client_id, group_wait_seconds=10, group_interval_seconds=300))
        silence = await silence_service_pb2_grpc.SilenceServiceStub(channel).CreateSilence(
            silence_service_pb2.CreateSilenceRequest(
                client_id=client.client_id, severity="LOW", source="*", name="*",
                duration=Duration(seconds=int(timedelta(hours=1).total_seconds())), comment="an example's"))
        key = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
            api_key_service_pb2.CreateApiKeyRequest(role=api_key_service_pb2.ROLE_TENANT,
                                                    client_id=client.client_id, name="ci"))
    [row] = await fetch(
        settings,
        "WITH digest AS (INSERT INTO digests (client_id, group_key, recipients, next_attempt_at)"
        " VALUES ($1, 'oncall@acme.io', '{oncall@acme.io}', now()) RETURNING digest_id)"
        " INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status, failure, attempts,"
        " digest_id) SELECT $1, $2, $3, '{oncall@acme.io}', $4, 'FAILED', 'oncall@acme.io: 550 no such user', 1,"
        " digest_id FROM digest RETURNING notification_id::text, digest_id::text",
        client.client_id, f"alert-{number}", [rule.rule_id], build_alert("HIGH", "db", "disk_full").SerializeToString())
    return {"CLIENT_ID": client.client_id, "RULE_ID": rule.rule_id, "SILENCE_ID": silence.silence_id,
            "KEY_ID": key.api_key.key_id, "DIGEST_ID": row["digest_id"], "NOTIFICATION_ID": row["notification_id"]}


async def test_every_alertctl_and_grpcurl_example_in_the_docs_succeeds(stack_settings: StackSettings,
                                                                       tmp_path: Path) -> None:
    commands = [(path, command) for path in DOCS for command in examples(path.read_text())]
    tools = grpcurl() if any(" grpcurl " in f" {command}" for _, command in commands) else tmp_path
    # Two dead letters of alerts.new, at offsets 0 and 1, for `dlq list` and `dlq replay`.
    await send(stack_settings, "alerts.new.dlq", [b"not an alert", b"nor this"], keys=[b"a-1", b"a-2"])
    service = await spawn_rule_service(stack_settings, str(tmp_path))
    try:
        shell = {
            "PATH": os.pathsep.join([str(tools), os.environ.get("PATH", ""), "/usr/bin", "/bin"]),
            "HOME": str(tmp_path),
            "PYTHONPATH": os.pathsep.join(sys.path),
            "ALERTING_RULE_SERVICE_ADDRESS": service.client_settings.rule_service_address,
            "ALERTING_TLS_CA_FILE": service.client_settings.tls_ca_file,
            "ALERTING_API_KEY_FILE": str(tmp_path / "admin.key"),
        }
        preamble = f'alertctl() {{ {shlex.quote(sys.executable)} -m alerting.cli.main "$@"; }}\n'
        failures = []
        for number, (path, command) in enumerate(commands):
            ids = await one_of_each(stack_settings, service.client_settings, number)
            ran = await asyncio.create_subprocess_exec(
                "bash", "-c", preamble + command, env={**shell, **ids},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stdout, stderr = await asyncio.wait_for(ran.communicate(), 120)
            if ran.returncode != 0:
                failures.append(f"{path}: {command}\n  exit {ran.returncode}: {stderr.decode().strip()}")
        assert failures == [], "\n".join(failures)
    finally:
        await stop_process(service.process)

