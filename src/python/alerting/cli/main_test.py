"""alertctl against a real rule-service (in-process gRPC server over TLS, real Postgres and Kafka)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from alerting.testsupport.services import (
    RuleServiceUnderTest,
    fetch,
    free_port,
    read,
    rule_service,
    send,
    wait_until,
)
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import dead_letter_service_pb2 as dead_letters_api
from alerting.v1 import events_pb2
from alerting.v1 import rule_service_pb2 as api

WIDE = 1000  # terminal width for help text: no wrapping, so option help appears verbatim
# The client-side settings alertctl reads from the environment, unset: only what a test gives counts.
CLIENT_ENVIRONMENT = ("ALERTING_API_KEY", "ALERTING_API_KEY_FILE", "ALERTING_TLS_CA_FILE",
                      "ALERTING_RULE_SERVICE_TLS", "ALERTING_RULE_SERVICE_ADDRESS")
NO_KEY_HINT = ("Hint: no API key was given; give one with"
               " --api-key-file PATH or ALERTING_API_KEY_FILE (or ALERTING_API_KEY)")
REFUSED_KEY_HINT = ("Hint: the API key given was refused; give another with"
                    " --api-key-file PATH or ALERTING_API_KEY_FILE (or ALERTING_API_KEY)")


async def run_alertctl(*args: str, env: dict[str, str] | None = None) -> Result:
    # The CLI blocks on gRPC; the server runs on this test's event loop.
    environment: dict[str, str | None] = {name: None for name in CLIENT_ENVIRONMENT}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), prog_name="alertctl",
                                   env={**environment, **(env or {})})


async def alertctl(service: RuleServiceUnderTest, *args: str, key: str | None = None) -> Result:
    """alertctl with `service`'s address and CA, presenting `key` (default: the admin key; ""
    presents none) through ALERTING_API_KEY."""
    return await run_alertctl("--address", service.client_settings.rule_service_address,
                              "--ca-file", service.client_settings.tls_ca_file, *args,
                              env={"ALERTING_API_KEY": service.admin_key if key is None else key})


def key_id(key: str) -> str:
    """The public id in a key `ak_<key_id>.<secret>`."""
    return key.partition(".")[0].removeprefix("ak_")


async def test_client_and_rule_commands(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        created = await alertctl(service, "--output", "json", "client", "create", "acme")
        assert created.exit_code == 0, created.output
        client_id = json.loads(created.stdout)[0]["client_id"]

        rule = await alertctl(service, "rule", "create", "--client", client_id, "--severity", "HIGH",
                              "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert rule.exit_code == 0, rule.output
        listed = await alertctl(service, "rule", "list", "--client", client_id)
        assert listed.exit_code == 0
        header, rule_line = listed.stdout.splitlines()[0], listed.stdout.splitlines()[2]
        assert header.split() == ["rule_id", "client_id", "severity", "source", "name", "emails", "enabled", "version",
                                  "updated_by"]
        assert rule_line.split()[2:] == ["HIGH", "db", "*", "ops@acme.io", "yes", "1", key_id(service.admin_key)]

        bad = await alertctl(service, "rule", "create", "--client", client_id, "--severity", "URGENT",
                             "--source", "db", "--name", "*", "--email", "ops@acme.io")
        assert (bad.exit_code, bad.stdout, bad.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: severity: unknown severity 'URGENT' (expected LOW, MEDIUM, HIGH,"
                   " CRITICAL or *)\n")


async def test_grant_commands_add_list_and_remove_and_only_admins_grant(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        admin_id = key_id(service.admin_key)
        client_id = json.loads((await alertctl(service, "--json", "client", "create", "acme")).stdout)[0]["client_id"]
        tenant = json.loads((await alertctl(service, "--json", "key", "create", "--client", client_id)).stdout)[0]
        exact = await alertctl(service, "grant", "add", "--client", client_id, "db")
        prefix = await alertctl(service, "--json", "grant", "add", "--client", client_id, "--prefix", "team-a.")
        assert (exact.exit_code, prefix.exit_code) == (0, 0), exact.output + prefix.output
        header, _, row = exact.stdout.splitlines()
        assert (header.split(), row.split()[:3], row.split()[4]) == (
            ["client_id", "prefix", "created_by", "created_at", "source"], [client_id, "no", admin_id], "db")
        [granted] = json.loads(prefix.stdout)
        assert {key: value for key, value in granted.items() if key != "created_at"} == {
            "client_id": client_id, "source": "team-a.", "prefix": True, "created_by": admin_id}

        by_tenant = await alertctl(service, "grant", "add", "--client", client_id, "web", key=tenant["key"])
        assert (by_tenant.exit_code, by_tenant.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED],
            f"Error: PERMISSION_DENIED: granting a source needs an ADMIN key; this is a TENANT key"
            f" ({tenant['api_key']['key_id']})\n")
        own = await alertctl(service, "grant", "list", key=tenant["key"])
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


async def test_output_json_and_its_alias(stack_settings: Settings) -> None:
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
            "emails": ["ops@acme.io"], "enabled": False, "version": "1", "updated_by": admin_id}

        table = await alertctl(service, "--output", "table", "client", "get", client["client_id"])
        assert table.stdout.splitlines() == [
            "client_id                             name  version  updated_by",
            "------------------------------------  ----  -------  ------------",
            f"{client['client_id']}  acme  1        {admin_id}",
        ]
        conflicting = await alertctl(service, "--json", "--output", "table", "client", "list")
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
    async with rule_service(stack_settings) as service:
        listed = await alertctl(service, "notification", "list", "--client", tenant, "--status", "failed")
        assert listed.exit_code == 0, listed.output
        header, _, line = listed.stdout.splitlines()
        assert header.split() == list(NOTIFICATION_HEADER)
        assert line.split()[:5] == [notification_id, tenant, "a-1", "FAILED", "1"]

        shown = await alertctl(service, "notification", "show", notification_id)
        assert shown.exit_code == 0, shown.output
        assert "failure: gone@x.io: 550 no such user" in shown.stdout.splitlines()
        assert shown.stdout.splitlines()[-1].split() == ["gone@x.io", "FAILED", "1", "550", "no", "such", "user"]

        retried = await alertctl(service, "--output", "json", "notification", "retry", notification_id)
        assert retried.exit_code == 0, retried.output
        assert json.loads(retried.stdout)[0]["status"] == "NOTIFICATION_STATUS_PENDING"
        again = await alertctl(service, "notification", "retry", notification_id)
        assert (again.exit_code, again.stderr) == (
            5, f"Error: FAILED_PRECONDITION: notification_id: {notification_id} is PENDING, not FAILED\n")


NOTIFICATION_HEADER = ("notification_id", "client_id", "alert_id", "status", "attempts", "created_at", "sent_at",
                       "digest_id", "delivered_in", "silenced_by")


async def insert_notification(settings: Settings, client_id: str, alert_id: str, status: str,
                              digest_id: str | None = None, silenced_by: str | None = None) -> str:
    """A notification row as the sender leaves it: SENT ones with their sent_at, in a digest or alone."""
    [row] = await fetch(
        settings,
        "INSERT INTO notifications (client_id, alert_id, rule_ids, emails, alert, status, attempts, sent_at,"
        " digest_id, silenced_by)"
        " VALUES ($1, $2, $3, '{ops@x.io}', $4, $5, CASE WHEN $5 = 'SENT' THEN 1 ELSE 0 END,"
        " CASE WHEN $5 = 'SENT' THEN now() END, $6, $7) RETURNING notification_id::text",
        client_id, alert_id, [str(uuid.uuid4())], build_alert("HIGH", "db", "disk").SerializeToString(), status,
        digest_id, silenced_by)
    return str(row["notification_id"])


async def insert_digest(settings: Settings, client_id: str, status: str) -> str:
    [row] = await fetch(
        settings,
        "INSERT INTO digests (client_id, group_key, recipients, status, next_attempt_at, attempts, flushed_at,"
        " sent_at) VALUES ($1, 'ops@x.io', '{ops@x.io}', $2, now(), CASE WHEN $2 = 'SENT' THEN 1 ELSE 0 END,"
        " CASE WHEN $2 = 'SENT' THEN now() END, CASE WHEN $2 = 'SENT' THEN now() END) RETURNING digest_id::text",
        client_id, status)
    return str(row["digest_id"])


async def test_notification_commands_show_digests_deliveries_and_silences(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = json.loads((await alertctl(service, "--json", "client", "create", "acme")).stdout)[0]["client_id"]
        muted = await alertctl(service, "--json", "silence", "add", "--client", client_id, "--duration", "1h",
                               "--comment", "maintenance")
        silence_id = json.loads(muted.stdout)[0]["silence_id"]
        sent_digest = await insert_digest(stack_settings, client_id, "SENT")
        await fetch(stack_settings, "INSERT INTO digest_recipients (digest_id, email, status, response, attempts)"
                                    " VALUES ($1, 'ops@x.io', 'SENT', '250 ok', 1)", sent_digest)
        open_digest = await insert_digest(stack_settings, client_id, "PENDING")
        first = await insert_notification(stack_settings, client_id, "a-1", "SENT", digest_id=sent_digest)
        second = await insert_notification(stack_settings, client_id, "a-2", "SENT", digest_id=sent_digest)
        alone = await insert_notification(stack_settings, client_id, "a-3", "SENT")
        silenced = await insert_notification(stack_settings, client_id, "a-4", "SILENCED", silenced_by=silence_id)
        waiting = await insert_notification(stack_settings, client_id, "a-5", "PENDING", digest_id=open_digest)

        in_digest = await alertctl(service, "notification", "list", "--client", client_id, "--digest", sent_digest)
        assert in_digest.exit_code == 0, in_digest.output
        header, _, *rows = in_digest.stdout.splitlines()
        assert header.split() == list(NOTIFICATION_HEADER)
        # created_at and sent_at (fields 5 and 6) are the database's clock.
        assert [row.split()[:5] + row.split()[7:] for row in rows] == [
            [second, client_id, "a-2", "SENT", "1", sent_digest, sent_digest],
            [first, client_id, "a-1", "SENT", "1", sent_digest, sent_digest]]

        muted_only = await alertctl(service, "notification", "list", "--client", client_id, "--status", "silenced")
        assert muted_only.exit_code == 0, muted_only.output
        [row] = muted_only.stdout.splitlines()[2:]
        # Never sent, in no digest: only created_at between attempts and silenced_by.
        assert (row.split()[:5], row.split()[6:]) == ([silenced, client_id, "a-4", "SILENCED", "0"], [silence_id])

        everything = await alertctl(service, "--json", "notification", "list", "--client", client_id)
        assert everything.exit_code == 0, everything.output
        assert [(n["notification_id"], n["status"], n["digest_id"], n["delivered_in"], n["silenced_by"])
                for n in json.loads(everything.stdout)] == [
            (waiting, "NOTIFICATION_STATUS_PENDING", open_digest, "", ""),
            (silenced, "NOTIFICATION_STATUS_SILENCED", "", "", silence_id),
            (alone, "NOTIFICATION_STATUS_SENT", "", alone, ""),
            (second, "NOTIFICATION_STATUS_SENT", sent_digest, sent_digest, ""),
            (first, "NOTIFICATION_STATUS_SENT", sent_digest, sent_digest, ""),
        ]

        shown = await alertctl(service, "notification", "show", first)
        assert shown.exit_code == 0, shown.output
        header, _, row, blank, *recipients = shown.stdout.splitlines()
        assert (header.split(), row.split()[:5], row.split()[7:], blank) == (
            list(NOTIFICATION_HEADER), [first, client_id, "a-1", "SENT", "1"], [sent_digest, sent_digest], "")
        # Sent in a digest: its recipients' outcomes are the digest's.
        assert [line.split() for line in recipients] == [
            ["email", "status", "attempts", "response"], ["--------", "------", "--------", "--------"],
            ["ops@x.io", "SENT", "1", "250", "ok"]]
        shown_alone = await alertctl(service, "--json", "notification", "show", alone)
        [alone_json] = json.loads(shown_alone.stdout)
        assert (alone_json["digest_id"], alone_json["delivered_in"], alone_json["silenced_by"]) == ("", alone, "")

        not_an_id = await alertctl(service, "notification", "list", "--digest", "d-1")
        assert (not_an_id.exit_code, not_an_id.stdout, not_an_id.stderr) == (
            3, "", "Error: INVALID_ARGUMENT: digest_id: not a UUID: 'd-1'\n")


async def test_policy_commands_get_set_and_delete_a_clients_policy(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = json.loads((await alertctl(service, "--json", "client", "create", "acme")).stdout)[0]["client_id"]
        other = json.loads((await alertctl(service, "--json", "client", "create", "other")).stdout)[0]["client_id"]
        made = json.loads((await alertctl(service, "--json", "key", "create", "--client", client_id)).stdout)[0]
        tenant, tenant_id = made["key"], made["api_key"]["key_id"]

        default = await alertctl(service, "policy", "get", "--client", client_id, key=tenant)
        header, _, row = default.stdout.splitlines()
        assert header.split() == ["client_id", "group_by", "group_wait_seconds", "group_interval_seconds",
                                  "max_emails_per_hour", "is_default", "version", "updated_by"]
        assert row.split() == [client_id, "10", "300", "default", "yes", "0"]  # no group_by, no updated_by

        # Without --expected-version: the version read (0, none of its own yet) is replaced.
        first = await alertctl(service, "policy", "set", "--client", client_id, "--group-by", "source, severity",
                               "--group-wait", "30s", "--group-interval", "5m", "--max-emails-per-hour", "40",
                               key=tenant)
        assert first.exit_code == 0, first.output
        assert first.stdout.splitlines()[2].split() == [client_id, "severity,source", "30", "300", "40", "no", "1",
                                                        tenant_id]
        second = await alertctl(service, "--json", "policy", "set", "--client", client_id, "--group-wait", "0s",
                                "--group-interval", "1h", "--expected-version", "1", key=tenant)
        [policy] = json.loads(second.stdout)
        assert {key: value for key, value in policy.items() if key not in ("created_at", "updated_at")} == {
            "client_id": client_id, "group_by": [], "group_wait_seconds": 0, "group_interval_seconds": 3600,
            "max_emails_per_hour": 0, "version": "2", "is_default": False, "updated_by": tenant_id}

        stale = await alertctl(service, "policy", "set", "--client", client_id, "--group-wait", "0s",
                               "--group-interval", "1m", "--version", "1", key=tenant)
        assert (stale.exit_code, stale.stderr) == (
            5, "Error: FAILED_PRECONDITION: expected_version: is 1, the current version is 2\n")
        unknown = await alertctl(service, "policy", "set", "--client", client_id, "--group-by", "alert_id",
                                 "--group-wait", "0s", "--group-interval", "1m", key=tenant)
        assert (unknown.exit_code, unknown.stderr) == (
            3, "Error: INVALID_ARGUMENT: group_by: unknown field 'alert_id' (expected any of severity, source, name,"
               " rule)\n")
        too_long = await alertctl(service, "policy", "set", "--client", client_id, "--group-wait", "2h",
                                  "--group-interval", "1m", key=tenant)
        assert (too_long.exit_code, too_long.stderr) == (
            3, "Error: INVALID_ARGUMENT: group_wait_seconds: 7200 is not between 0 and 3600\n")
        theirs = await alertctl(service, "policy", "get", "--client", other, key=tenant)
        assert (theirs.exit_code, theirs.stderr) == (4, f"Error: NOT_FOUND: client_id: no client {other}\n")

        deleted = await alertctl(service, "policy", "delete", "--client", client_id, key=tenant)
        assert (deleted.exit_code, deleted.stdout) == (0, f"client {client_id} has the platform's default policy"
                                                          " again\n")
        again = await alertctl(service, "policy", "delete", "--client", client_id, key=tenant)
        assert (again.exit_code, again.stderr) == (
            4, f"Error: NOT_FOUND: client_id: client {client_id} has no notification policy of its own\n")
        back = await alertctl(service, "--json", "policy", "get", "--client", client_id)
        assert json.loads(back.stdout)[0]["is_default"] is True


async def test_silence_commands_add_list_get_and_expire(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = json.loads((await alertctl(service, "--json", "client", "create", "acme")).stdout)[0]["client_id"]
        other = json.loads((await alertctl(service, "--json", "client", "create", "other")).stdout)[0]["client_id"]
        made = json.loads((await alertctl(service, "--json", "key", "create", "--client", client_id)).stdout)[0]
        tenant, tenant_id = made["key"], made["api_key"]["key_id"]
        stranger = json.loads((await alertctl(service, "--json", "key", "create", "--client", other)).stdout)[0]["key"]

        added = await alertctl(service, "--json", "silence", "add", "--client", client_id, "--source", "db",
                               "--duration", "2h", "--comment", "disk swap, CHG-1234", key=tenant)
        assert added.exit_code == 0, added.output
        [active] = json.loads(added.stdout)
        assert {key: value for key, value in active.items() if key not in ("silence_id", "starts_at", "ends_at",
                                                                           "created_at")} == {
            "client_id": client_id, "severity": "*", "source": "db", "name": "*", "comment": "disk swap, CHG-1234",
            "created_by": tenant_id, "expired_by": "", "state": "SILENCE_STATE_ACTIVE"}
        starts, ends = (datetime.fromisoformat(active[field]) for field in ("starts_at", "ends_at"))
        assert ends - starts == timedelta(hours=2)

        later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        pending = await alertctl(service, "silence", "add", "--client", client_id, "--severity", "HIGH", "--name",
                                 "disk_full", "--starts-at", later.isoformat(), "--ends-at",
                                 (later + timedelta(hours=2)).isoformat(), "--comment", "maintenance", key=tenant)
        assert pending.exit_code == 0, pending.output
        header, _, row = pending.stdout.splitlines()
        assert header.split() == ["silence_id", "client_id", "state", "severity", "starts_at", "ends_at",
                                  "created_by", "expired_by", "source", "name", "comment"]
        pending_id = row.split()[0]
        later_text = later.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row.split()[1:] == [client_id, "PENDING", "HIGH", later_text,
                                   (later + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), tenant_id, "*",
                                   "disk_full", "maintenance"]

        def listed(result: Result) -> list[tuple[str, str]]:
            assert result.exit_code == 0, result.output
            return [(line.split()[0], line.split()[2]) for line in result.stdout.splitlines()[2:]]

        assert listed(await alertctl(service, "silence", "list", key=tenant)) == [
            (pending_id, "PENDING"), (active["silence_id"], "ACTIVE")]
        expired = await alertctl(service, "--json", "silence", "expire", active["silence_id"], key=tenant)
        [shown] = json.loads(expired.stdout)
        assert (shown["state"], shown["expired_by"], "expired_at" in shown) == ("SILENCE_STATE_EXPIRED", tenant_id,
                                                                                 True)
        again = await alertctl(service, "silence", "expire", active["silence_id"], key=tenant)
        assert (again.exit_code, again.stderr) == (
            5, f"Error: FAILED_PRECONDITION: silence_id: {active['silence_id']} is EXPIRED, not PENDING or ACTIVE\n")
        assert listed(await alertctl(service, "silence", "list", "--client", client_id)) == [(pending_id, "PENDING")]
        assert listed(await alertctl(service, "silence", "list", "--include-expired", key=tenant)) == [
            (pending_id, "PENDING"), (active["silence_id"], "EXPIRED")]
        got = await alertctl(service, "silence", "get", active["silence_id"])
        assert got.stdout.splitlines()[2].split()[2] == "EXPIRED"

        hidden = await alertctl(service, "silence", "get", pending_id, key=stranger)
        assert (hidden.exit_code, hidden.stderr) == (4, f"Error: NOT_FOUND: silence_id: no silence {pending_id}\n")
        assert listed(await alertctl(service, "silence", "list", "--include-expired", key=stranger)) == []
        lowercase = await alertctl(service, "silence", "add", "--client", client_id, "--severity", "high",
                                   "--duration", "1h", "--comment", "why", key=tenant)
        assert (lowercase.exit_code, lowercase.stderr) == (
            3, "Error: INVALID_ARGUMENT: severity: unknown severity 'high' (expected LOW, MEDIUM, HIGH, CRITICAL"
               " or *)\n")
        blank = await alertctl(service, "silence", "add", "--client", client_id, "--duration", "1h", "--comment", " ",
                               key=tenant)
        assert (blank.exit_code, blank.stderr) == (
            3, "Error: INVALID_ARGUMENT: comment: missing: say why the notifications are silenced\n")


# ---------------------------------------------------------------------- API keys and credentials
async def test_api_keys_create_list_whoami_and_revoke(stack_settings: Settings, tmp_path: Path) -> None:
    async with rule_service(stack_settings, api_key_cache_seconds=0.1) as service:
        admin_id = key_id(service.admin_key)
        created = await alertctl(service, "--json", "client", "create", "acme")
        client_id = json.loads(created.stdout)[0]["client_id"]

        made = await alertctl(service, "key", "create", "--client", client_id, "--name", "ci")
        assert (made.exit_code, made.stderr) == (0, "Store the key now: it is not shown again.\n"), made.output
        header, _, row, blank, shown_key = made.stdout.splitlines()
        assert header.split() == ["key_id", "role", "client_id", "created_by", "created_at", "expires_at",
                                  "revoked_at", "name"]
        tenant_id = row.split()[0]
        assert (row.split()[1:4], row.split()[-1], blank) == (["TENANT", client_id, admin_id], "ci", "")
        assert shown_key.startswith(f"key: ak_{tenant_id}."), shown_key
        tenant_key = shown_key.removeprefix("key: ")
        key_file = tmp_path / "tenant.key"
        key_file.write_text(tenant_key + "\n")

        # --api-key-file wins over ALERTING_API_KEY (the admin key here).
        whoami = await alertctl(service, "--api-key-file", str(key_file), "--json", "whoami")
        [tenant] = json.loads(whoami.stdout)
        assert tenant == {"key_id": tenant_id, "role": "ROLE_TENANT", "client_id": client_id, "name": "ci",
                          "created_by": admin_id, "created_at": tenant["created_at"]}
        admin = await alertctl(service, "whoami")
        assert admin.stdout.splitlines()[2].split()[:3] == [admin_id, "ADMIN", "bootstrap"]

        # The tenant manages its client's rules, but not clients.
        rule = await alertctl(service, "--api-key-file", str(key_file), "--json", "rule", "create", "--client",
                              client_id, "--severity", "HIGH", "--source", "db", "--name", "*", "--email", "o@acme.io")
        assert rule.exit_code == 0, rule.output
        rule_id = json.loads(rule.stdout)[0]["rule_id"]
        got = await alertctl(service, "rule", "get", rule_id)
        header, _, row = got.stdout.splitlines()
        assert (header.split()[-1], row.split()[-1]) == ("updated_by", tenant_id)
        denied = await alertctl(service, "--api-key-file", str(key_file), "client", "create", "other")
        assert (denied.exit_code, denied.stdout, denied.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED], "",
            f"Error: PERMISSION_DENIED: creating a client needs an ADMIN key; this is a TENANT key ({tenant_id})\n")

        as_json = await alertctl(service, "--json", "key", "create", "--admin", "--name", "ops")
        [response] = json.loads(as_json.stdout)
        ops_key = response["key"]
        ops_id = key_id(ops_key)
        assert response["api_key"] == {"key_id": ops_id, "role": "ROLE_ADMIN", "client_id": "", "name": "ops",
                                       "created_by": admin_id, "created_at": response["api_key"]["created_at"]}
        assert (await alertctl(service, "whoami", key=ops_key)).stdout.splitlines()[2].split()[:2] == [ops_id, "ADMIN"]

        def listed(result: Result) -> list[str]:
            assert result.exit_code == 0, result.output
            return [line.split()[0] for line in result.stdout.splitlines()[2:]]

        assert listed(await alertctl(service, "key", "list")) == sorted([admin_id, tenant_id, ops_id])
        assert listed(await alertctl(service, "key", "list", "--client", client_id)) == [tenant_id]
        # A tenant sees its client's keys only.
        assert listed(await alertctl(service, "--api-key-file", str(key_file), "key", "list")) == [tenant_id]

        revoked = await alertctl(service, "--json", "key", "revoke", tenant_id)
        assert revoked.exit_code == 0, revoked.output
        [revoked_key] = json.loads(revoked.stdout)
        assert revoked_key == {**tenant, "revoked_at": revoked_key["revoked_at"]}
        assert listed(await alertctl(service, "key", "list", "--client", client_id)) == []
        assert listed(await alertctl(service, "key", "list", "--client", client_id, "--include-revoked")) == [
            tenant_id]

        async def refused() -> bool:
            return (await alertctl(service, "whoami", key=tenant_key)).exit_code != 0

        # The server trusts its cached check for api_key_cache_seconds (0.1 s here): poll.
        await wait_until(refused, 30, "the revoked key refused")
        gone = await alertctl(service, "--api-key-file", str(key_file), "whoami")
        assert (gone.exit_code, gone.stdout, gone.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.UNAUTHENTICATED], "",
            f"Error: UNAUTHENTICATED: unknown or revoked API key\n{REFUSED_KEY_HINT}\n")


async def test_keys_that_expire_show_when_and_only_admins_create_keys(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        client_id = json.loads((await alertctl(service, "--json", "client", "create", "acme")).stdout)[0]["client_id"]
        before = datetime.now(UTC)
        within = await alertctl(service, "--json", "key", "create", "--client", client_id, "--expires-in", "90d")
        after = datetime.now(UTC)
        at = await alertctl(service, "key", "create", "--client", client_id, "--name", "ci",
                            "--expires-at", "2099-01-31T18:00:00+01:00")
        [made] = json.loads(within.stdout)
        expires = datetime.fromisoformat(made["api_key"]["expires_at"])
        assert before + timedelta(days=90) <= expires <= after + timedelta(days=90)
        header, _, row, _, _ = at.stdout.splitlines()
        assert (header.split()[5], row.split()[1], row.split()[5:]) == (
            "expires_at", "TENANT", ["2099-01-31T17:00:00Z", "ci"])
        listed = await alertctl(service, "key", "list", "--client", client_id)
        assert sorted(line.split()[5] for line in listed.stdout.splitlines()[2:]) == sorted(
            [made["api_key"]["expires_at"], "2099-01-31T17:00:00Z"])

        tenant_key = made["key"]
        by_tenant = await alertctl(service, "key", "create", "--client", client_id, key=tenant_key)
        assert (by_tenant.exit_code, by_tenant.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.PERMISSION_DENIED],
            f"Error: PERMISSION_DENIED: creating a key needs an ADMIN key; this is a TENANT key"
            f" ({made['api_key']['key_id']})\n")
        past = await alertctl(service, "key", "create", "--admin", "--expires-at", "2001-01-01T00:00:00Z")
        assert (past.exit_code, past.stderr) == (
            exit_codes.EXIT_CODES[grpc.StatusCode.INVALID_ARGUMENT],
            "Error: INVALID_ARGUMENT: expires_at: 2001-01-01T00:00:00+00:00 is not in the future\n")


@pytest.mark.parametrize("options, problem", [
    (("--expires-in", "90"), "Invalid value for '--expires-in': a whole number and a unit, s, m, h or d"
                             " (e.g. 90d or 12h)"),
    (("--expires-in", "-1d"), "Invalid value for '--expires-in': a whole number and a unit, s, m, h or d"
                              " (e.g. 90d or 12h)"),
    (("--expires-in", "0d"), "Invalid value for '--expires-in': more than zero (e.g. 90d or 12h)"),
    (("--expires-at", "tomorrow"), "Invalid value for '--expires-at': an ISO 8601 time, e.g. 2027-01-31T18:00:00Z"),
    (("--expires-at", "2027-01-31T18:00:00"),
     "Invalid value for '--expires-at': give the offset from UTC too, e.g. 2027-01-31T18:00:00Z"),
    (("--expires-in", "1d", "--expires-at", "2027-01-31T18:00:00Z"), "give --expires-in or --expires-at, not both"),
])
async def test_an_expiry_alertctl_cannot_read_is_a_usage_error(options: tuple[str, ...], problem: str) -> None:
    refused = await run_alertctl("key", "create", "--admin", *options)
    assert (refused.exit_code, refused.stderr.splitlines()[-1]) == (2, f"Error: {problem}")


async def test_without_a_key_a_call_is_unauthenticated_with_a_hint(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        refused = await alertctl(service, "client", "list", key="")
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        exit_codes.EXIT_CODES[grpc.StatusCode.UNAUTHENTICATED], "",
        f"Error: UNAUTHENTICATED: no API key: send the metadata `authorization: Bearer <key>`\n{NO_KEY_HINT}\n")


async def test_tls_and_keys_from_the_environment(stack_settings: Settings, tmp_path: Path) -> None:
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


def test_key_cells_escape_control_characters() -> None:
    key = keys_api.ApiKey(key_id="abcdefghijkl", role=keys_api.ROLE_TENANT, name="ci\nrunner")
    assert [cell(key, column) for column in ("role", "name", "revoked_at")] == ["TENANT", "ci\\x0arunner", ""]


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
        "grant", "grant add", "grant list", "grant remove",
        "key", "key create", "key list", "key revoke",
        "notification", "notification list", "notification retry", "notification show",
        "policy", "policy delete", "policy get", "policy set",
        "rule", "rule create", "rule delete", "rule get", "rule list", "rule update",
        "silence", "silence add", "silence expire", "silence get", "silence list",
        "whoami",
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
    6  UNAUTHENTICATED, PERMISSION_DENIED: no valid API key, or one whose role may not do this
    7  RESOURCE_EXHAUSTED: a quota or the rate limit, or a request or answer too large
    8  UNAVAILABLE, DEADLINE_EXCEEDED: unreachable, or no answer within --timeout
""")


# ---------------------------------------------------------------------- exit codes
def test_usage_and_error_lines_name_the_program_alertctl() -> None:
    # As the PEX runs it: the module as __main__, where click alone would say `python -m alerting.cli.main`.
    environment = {name: value for name, value in os.environ.items() if name not in CLIENT_ENVIRONMENT}
    run = subprocess.run([sys.executable, "-m", "alerting.cli.main", "notification", "list", "--status", "muted"],
                         capture_output=True, text=True, timeout=120,
                         env={**environment, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert (run.returncode, run.stdout, run.stderr.splitlines()[:2]) == (
        2, "", ["Usage: alertctl notification list [OPTIONS]", "Try 'alertctl notification list --help' for help."])


def test_every_grpc_status_has_one_exit_code() -> None:
    assert {code.name: exit_codes.exit_code(code) for code in grpc.StatusCode} == {
        "OK": 0, "CANCELLED": 1, "UNKNOWN": 1, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 8, "NOT_FOUND": 4,
        "ALREADY_EXISTS": 5, "PERMISSION_DENIED": 6, "RESOURCE_EXHAUSTED": 7, "FAILED_PRECONDITION": 5,
        "ABORTED": 1, "OUT_OF_RANGE": 1, "UNIMPLEMENTED": 1, "INTERNAL": 1, "UNAVAILABLE": 8, "DATA_LOSS": 1,
        "UNAUTHENTICATED": 6,
    }


async def test_exit_codes_of_a_real_rule_service(stack_settings: Settings) -> None:
    async with rule_service(stack_settings) as service:
        created = await alertctl(service, "--json", "client", "create", "acme")
        client_id = json.loads(created.stdout)[0]["client_id"]

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


CLIENT = str(uuid.uuid4())


@pytest.mark.parametrize("args, error", [
    (["rule", "create", "--severity", "HIGH", "--source", "db", "--name", "*", "--email", "a@x.io"],
     "Error: Missing option '--client'."),
    (["--timeout", "0", "client", "list"], "Error: Invalid value for '--timeout': 0.0 is not in the range x>0."),
    (["--output", "yaml", "client", "list"],
     "Error: Invalid value for '--output': 'yaml' is not one of 'table', 'json'."),
    (["dlq", "replay", "alerts.new"], "Error: Missing argument 'OFFSET...'."),
    (["dlq", "list", "alerts.new", "--from", "-1"], "Error: Invalid value for '--from': -1 is not in the range x>=0."),
    (["key", "create", "--name", "ci"], "Error: give --admin or --client CLIENT_ID, one of them"),
    (["key", "create", "--admin", "--client", str(uuid.uuid4())],
     "Error: give --admin or --client CLIENT_ID, one of them"),
    (["--api-key-file", "/nonexistent/key", "whoami"],
     "Error: Invalid value for '--api-key-file': File '/nonexistent/key' does not exist."),
    (["--ca-file", "/nonexistent/ca.pem", "whoami"],
     "Error: Invalid value for '--ca-file': File '/nonexistent/ca.pem' does not exist."),
    (["policy", "set", "--client", CLIENT, "--group-interval", "5m"], "Error: Missing option '--group-wait'."),
    (["policy", "set", "--client", CLIENT, "--group-wait", "10", "--group-interval", "5m"],
     "Error: Invalid value for '--group-wait': a whole number and a unit, s, m, h or d (e.g. 90d or 12h)"),
    (["policy", "set", "--client", CLIENT, "--group-wait", "0s", "--group-interval", "0m"],
     "Error: Invalid value for '--group-interval': more than zero (e.g. 90d or 12h)"),
    (["policy", "set", "--client", CLIENT, "--group-wait", "0s", "--group-interval", "99999d"],
     "Error: Invalid value for '--group-interval': at most 2147483647 s"),
    (["policy", "set", "--client", CLIENT, "--group-wait", "0s", "--group-interval", "1m", "--max-emails-per-hour",
      "-1"], "Error: Invalid value for '--max-emails-per-hour': -1 is not in the range 0<=x<=2147483647."),
    (["silence", "add", "--client", CLIENT, "--comment", "why"], "Error: give --duration or --ends-at, one of them"),
    (["silence", "add", "--client", CLIENT, "--comment", "why", "--duration", "1h", "--ends-at",
      "2099-01-01T00:00:00Z"], "Error: give --duration or --ends-at, one of them"),
    (["silence", "add", "--client", CLIENT, "--comment", "why", "--duration", "0h"],
     "Error: Invalid value for '--duration': more than zero (e.g. 90d or 12h)"),
    (["silence", "add", "--client", CLIENT, "--comment", "why", "--ends-at", "2099-01-01T00:00:00"],
     "Error: Invalid value for '--ends-at': give the offset from UTC too, e.g. 2027-01-31T18:00:00Z"),
    (["silence", "add", "--client", CLIENT, "--duration", "1h"], "Error: Missing option '--comment'."),
    (["notification", "list", "--status", "muted"],
     "Error: Invalid value for '--status': 'muted' is not one of 'pending', 'sent', 'failed', 'silenced'."),
])
async def test_usage_errors_exit_2_and_send_nothing(args: list[str], error: str) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    wrong = await run_alertctl("--address", nobody, *args)
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

    async with rule_service(stack_settings) as service:
        listed = await alertctl(service, "dlq", "list", "alerts.matched")
        assert (listed.exit_code, listed.stderr) == (0, "")
        header, rule, *lines = listed.stdout.splitlines()
        assert header.split() == ["offset", "timestamp", "source", "key", "value_size", "replay_of", "reason"]
        assert [line.split(None, 5) for line in lines] == rows

        first = await alertctl(service, "dlq", "list", "alerts.matched", "--limit", "1")
        assert [line.split(None, 5) for line in first.stdout.splitlines()[2:]] == rows[:1]
        assert first.stderr == "(more: --from 1; the last offset is 1)\n"
        second = await alertctl(service, "dlq", "list", "alerts.matched", "--from", "1", "--limit", "1")
        assert ([line.split(None, 5) for line in second.stdout.splitlines()[2:]], second.stderr) == (rows[1:], "")

        as_json = await alertctl(service, "--output", "json", "dlq", "list", "alerts.matched")
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

        replayed = await alertctl(service, "dlq", "replay", "alerts.matched", "1", "1")
        assert (replayed.exit_code, replayed.stdout) == (0, f"replayed 1 to {matched_topic}: dead-letter offsets 1\n")
        replayed = await alertctl(service, "--output", "json", "dlq", "replay", "alerts.matched", "1")
        assert json.loads(replayed.stdout) == [{"replayed": 1, "offsets": ["1"], "topic": matched_topic}]
        on_topic = await read(stack_settings, topics.ALERTS_MATCHED, 4)
        replays = [(record.key, record.value, list(record.headers)) for record in on_topic if record.headers]
        assert replays == [(b"key-2", bad[1], [("dlq.replay_of", f"{dlq}/0/1".encode())])] * 2

        missing = await alertctl(service, "dlq", "replay", "alerts.matched", "0", "5")
        assert (missing.exit_code, missing.stderr) == (
            4, f"Error: NOT_FOUND: offsets: {dlq} has no dead letter at offset 5 (it holds offsets 0 to 1)\n")
        unknown = await alertctl(service, "dlq", "list", "alerts.matched.dlq")
        assert (unknown.exit_code, unknown.stderr) == (
            3, "Error: INVALID_ARGUMENT: topic: unknown 'alerts.matched.dlq' (expected one of alerts.new,"
               " rule.changed, alerts.matched, notifications.ready)\n")
    assert len(await read(stack_settings, topics.ALERTS_MATCHED, 4)) == 4  # the NOT_FOUND replay published nothing
