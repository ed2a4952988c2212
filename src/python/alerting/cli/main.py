"""alertctl: operate the platform through the rule-service's gRPC API: tenants (clients),
their rules and granted sources, how their notifications are delivered (policies) and muted
(silences), notifications, dead letters, and the API keys every call presents.

    alertctl [--address HOST:PORT] [--api-key-file PATH] [--ca-file PATH] [--plaintext]
             [--timeout SECONDS] [--output table|json] COMMAND ...
    alertctl client create NAME | get ID | list | update ID --name N --version V | delete ID
    alertctl rule create --client ID --severity S --source S --name N --email E... | get | list | update | delete
    alertctl grant add --client ID [--prefix] SOURCE | list [--client ID] | remove --client ID [--prefix] SOURCE
    alertctl policy get --client ID | set --client ID [--group-by F,...] --group-wait D --group-interval D
                 [--max-emails-per-hour N] [--expected-version V] | delete --client ID [--version V]
    alertctl silence add --client ID [--severity S] [--source S] [--name N] (--duration D | --ends-at TIME)
                 [--starts-at TIME] --comment TEXT | get ID | list [--client ID] [--include-expired] | expire ID
    alertctl notification list [--client ID] [--status S] [--digest ID] | show ID | retry ID
    alertctl dlq list TOPIC [--from OFFSET] [--limit N] | replay TOPIC OFFSET...
    alertctl key create --admin | --client ID [--name N] [--expires-in DURATION | --expires-at TIME]
                 | list [--client ID] [--include-revoked] | revoke KEY_ID
    alertctl whoami

The channel (TLS, the key on every call) is alerting/common/grpc_client.py's. How a failed
call exits is alerting/cli/exit_codes.py; `alertctl --help` shows the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from click.core import ParameterSource
from google.protobuf.message import Message
from pydantic import ValidationError

from alerting.cli import exit_codes
from alerting.cli.formatting import (
    API_KEY_COLUMNS,
    CLIENT_COLUMNS,
    DEAD_LETTER_COLUMNS,
    GRANT_COLUMNS,
    NOTIFICATION_COLUMNS,
    POLICY_COLUMNS,
    RECIPIENT_COLUMNS,
    REPLAY_COLUMNS,
    RULE_COLUMNS,
    SILENCE_COLUMNS,
    as_json,
    table,
)
from alerting.common import topics
from alerting.common.grpc_client import blocking_channel
from alerting.common.settings import Settings, secret_value
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import (
    api_key_service_pb2_grpc,
    dead_letter_service_pb2_grpc,
    notification_policy_service_pb2_grpc,
    notification_service_pb2_grpc,
    rule_service_pb2_grpc,
    silence_service_pb2_grpc,
)
from alerting.v1 import dead_letter_service_pb2 as dead_letters_api
from alerting.v1 import notification_policy_service_pb2 as policies_api
from alerting.v1 import notification_service_pb2 as notifications_api
from alerting.v1 import rule_service_pb2 as api
from alerting.v1 import silence_service_pb2 as silences_api

Response = TypeVar("Response")
OUTPUTS = ("table", "json")
DEFAULT_TIMEOUT_SECONDS = 30.0
GIVE_A_KEY = "--api-key-file PATH or ALERTING_API_KEY_FILE (or ALERTING_API_KEY)"


class Context:
    """What every command shares: the channel and stubs, the deadline of each call, the output
    format, and whether a key goes with the calls."""

    def __init__(self, channel: grpc.Channel, has_key: bool, timeout: float, output: str) -> None:
        self.channel = channel
        self.stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        self.keys = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
        self.notifications = notification_service_pb2_grpc.NotificationServiceStub(channel)
        self.dead_letters = dead_letter_service_pb2_grpc.DeadLetterServiceStub(channel)
        self.policies = notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(channel)
        self.silences = silence_service_pb2_grpc.SilenceServiceStub(channel)
        self.has_key = has_key
        self.timeout = timeout
        self.output = output

    @property
    def output_json(self) -> bool:
        return self.output == "json"

    def show(self, messages: Sequence[Message], columns: tuple[str, ...]) -> None:
        click.echo(as_json(messages) if self.output_json else table(messages, columns))

    def call(self, method: Callable[..., Response], request: Message) -> Response:
        """One RPC with the --timeout deadline; a failure ends the command with the exit
        code of its status (exit_codes.py), its code and details on stderr, and for
        UNAUTHENTICATED a hint on giving a key."""
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            click.echo(exit_codes.error_line(error.code(), error.details()), err=True)
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                click.echo(f"Hint: the API key given was refused; give another with {GIVE_A_KEY}" if self.has_key
                           else f"Hint: no API key was given; give one with {GIVE_A_KEY}", err=True)
            raise click.exceptions.Exit(exit_codes.exit_code(error.code())) from error

    def show_pages(self, fetch_page: Callable[[str], tuple[Sequence[Message], str]], every_page: bool,
                   columns: tuple[str, ...]) -> None:
        """Show a list's first page, or with `every_page` all of them; `fetch_page(token)`
        returns one page's items and the next page's token ("" after the last)."""
        items: list[Message] = []
        token = ""
        while True:
            page, token = fetch_page(token)
            items += page
            if not (token and every_page):
                break
        self.show(items, columns)
        if token:
            click.echo("(more: --all to list every page)", err=True)


pass_context = click.make_pass_decorator(Context)


def read_key_file(context: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """--api-key-file's key; an empty file is a usage error (not a silent fall-back to the environment)."""
    if path is None:
        return None
    key = Path(path).read_text(encoding="utf-8").strip()
    if not key:
        raise click.BadParameter(f"{path} is empty", context, param)
    return key


def client_settings(address: str | None, api_key: str | None, ca_file: str | None, plaintext: bool) -> Settings:
    """The ALERTING_* settings with the global options over them. A bad setting is a usage
    error that names the variable but not its value: values include secrets."""
    given: dict[str, Any] = {"rule_service_address": address, "api_key": api_key, "tls_ca_file": ca_file,
                             "rule_service_tls": False if plaintext else None}
    try:
        return Settings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        raise click.UsageError("; ".join(
            (f"ALERTING_{'_'.join(str(part) for part in problem['loc']).upper()}: " if problem["loc"] else "")
            + problem["msg"].removeprefix("Value error, ")
            for problem in error.errors(include_url=False, include_input=False, include_context=False)
        )) from None


def page_size_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option("--page-size", default=100, show_default=True, metavar="N",
                        help="Items per request to the server (at most 1000).")(command)


def every_page_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option("--all", "every_page", is_flag=True,
                        help="Follow every page; without it only the first page is shown.")(command)


def version_option(required: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    if required:
        return click.option("--version", "expected_version", type=int, required=True, metavar="VERSION",
                            help="The version you read and are changing; FAILED_PRECONDITION (exit 5) if it "
                                 "has changed since.")
    return click.option("--version", "expected_version", type=int, default=0, show_default=True, metavar="VERSION",
                        help="Only if it is still at this version (exit 5 otherwise); 0 means any version.")


DURATION = re.compile(r"(0|[1-9][0-9]{0,8})([smhd])")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
INT32_MAX = 2**31 - 1  # the largest count of seconds a policy's fields hold


def duration(allow_zero: bool = False) -> Callable[[click.Context, click.Parameter, str | None], timedelta | None]:
    """A callback reading an option's length of time: a whole number of seconds, minutes,
    hours or days (10s, 5m, 2h, 90d); zero only where `allow_zero`."""
    def parse(context: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
        if value is None:
            return None
        match = DURATION.fullmatch(value.strip())
        if match is None:
            raise click.BadParameter("a whole number and a unit, s, m, h or d (e.g. 90d or 12h)", context, param)
        span = timedelta(**{UNITS[match[2]]: int(match[1])})
        if not span and not allow_zero:
            raise click.BadParameter("more than zero (e.g. 90d or 12h)", context, param)
        return span

    return parse


def seconds(allow_zero: bool = False) -> Callable[[click.Context, click.Parameter, str | None], int | None]:
    """A callback reading an option's length of time (as `duration`) as whole seconds."""
    def parse(context: click.Context, param: click.Parameter, value: str | None) -> int | None:
        span = duration(allow_zero)(context, param, value)
        if span is None:
            return None
        if span.total_seconds() > INT32_MAX:
            raise click.BadParameter(f"at most {INT32_MAX} s", context, param)
        return int(span.total_seconds())

    return parse


def expires_in(context: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """--expires-in's time from now: a whole number of seconds, minutes, hours or days (90d)."""
    span = duration()(context, param, value)
    return None if span is None else datetime.now(UTC) + span


def time_option(context: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An option's time: ISO 8601 with its offset from UTC (2027-01-31T18:00:00Z)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter("an ISO 8601 time, e.g. 2027-01-31T18:00:00Z", context, param) from None
    if at.tzinfo is None:
        raise click.BadParameter("give the offset from UTC too, e.g. 2027-01-31T18:00:00Z", context, param)
    return at


@click.group(epilog=exit_codes.help_text(), context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--address", metavar="HOST:PORT",
              help="The rule-service's gRPC address (default: ALERTING_RULE_SERVICE_ADDRESS, else 127.0.0.1:50051).")
@click.option("--api-key-file", "api_key", type=click.Path(exists=True, dir_okay=False), callback=read_key_file,
              metavar="PATH", help="A file holding the API key that every call presents (default: ALERTING_API_KEY, "
                                   "or the file ALERTING_API_KEY_FILE names).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="The CA certificate (PEM) that the rule-service's TLS certificate is checked against "
                   "(default: ALERTING_TLS_CA_FILE, else the system's CAs).")
@click.option("--plaintext", is_flag=True,
              help="Connect without TLS, to a rule-service that serves plaintext (default: TLS unless "
                   "ALERTING_RULE_SERVICE_TLS=false).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT_SECONDS,
              show_default=True, metavar="SECONDS",
              help="Deadline of each call to the server; past it the command fails with DEADLINE_EXCEEDED (exit 8).")
@click.option("--output", type=click.Choice(OUTPUTS), default="table", show_default=True,
              help="table: aligned columns for people; json: a JSON array in protobuf's JSON mapping, for scripts.")
@click.option("--json", "json_alias", is_flag=True, help="The same as --output json.")
@click.pass_context
def cli(context: click.Context, address: str | None, api_key: str | None, ca_file: str | None, plaintext: bool,
        timeout: float, output: str, json_alias: bool) -> None:
    """Operate the alerting platform through the rule-service's gRPC API: tenants
    (clients), their rules and granted sources, how their notifications are delivered
    (policies) and muted (silences), the notifications sent, dead letters, and API keys.

    Global options come before the command, e.g. `alertctl --output json rule list`.
    Every call goes over TLS (unless --plaintext) and presents an API key: an ADMIN key
    manages clients, the sources granted to them and every key, a TENANT key one client's
    rules, policy, silences, notifications and keys. A failed call prints
    `Error: <gRPC code>: <details>` on stderr and exits with the code below.
    """
    if json_alias:
        if context.get_parameter_source("output") == ParameterSource.COMMANDLINE and output != "json":
            raise click.UsageError("--json is --output json: give one of them", context)
        output = "json"
    settings = client_settings(address, api_key, ca_file, plaintext)
    try:
        channel = blocking_channel(settings)
    except OSError as error:  # the CA file that ALERTING_TLS_CA_FILE names
        raise click.UsageError(f"ALERTING_TLS_CA_FILE: cannot read {settings.tls_ca_file}: {error.strerror}") from None
    context.obj = Context(channel, bool(secret_value(settings.api_key)), timeout, output)
    context.call_on_close(channel.close)


# ---------------------------------------------------------------------- clients
@cli.group()
def client() -> None:
    """Tenants: each owns rules and gets their notifications."""


@client.command("create")
@click.argument("name")
@pass_context
def client_create(ctx: Context, name: str) -> None:
    """Create a client called NAME (1-200 characters) and show it."""
    ctx.show([ctx.call(ctx.stub.CreateClient, api.CreateClientRequest(name=name))], CLIENT_COLUMNS)


@client.command("get")
@click.argument("client_id")
@pass_context
def client_get(ctx: Context, client_id: str) -> None:
    """Show the client CLIENT_ID (a UUID)."""
    ctx.show([ctx.call(ctx.stub.GetClient, api.GetClientRequest(client_id=client_id))], CLIENT_COLUMNS)


@client.command("list")
@page_size_option
@every_page_option
@pass_context
def client_list(ctx: Context, page_size: int, every_page: bool) -> None:
    """List clients, ordered by id."""
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.stub.ListClients, api.ListClientsRequest(page_size=page_size, page_token=token))
        return page.clients, page.next_page_token

    ctx.show_pages(fetch_page, every_page, CLIENT_COLUMNS)


@client.command("update")
@click.argument("client_id")
@click.option("--name", required=True, help="The new name (1-200 characters).")
@version_option(required=True)
@pass_context
def client_update(ctx: Context, client_id: str, name: str, expected_version: int) -> None:
    """Rename the client CLIENT_ID and show it at its new version."""
    request = api.UpdateClientRequest(client_id=client_id, name=name, expected_version=expected_version)
    ctx.show([ctx.call(ctx.stub.UpdateClient, request)], CLIENT_COLUMNS)


@client.command("delete")
@click.argument("client_id")
@version_option(required=False)
@pass_context
def client_delete(ctx: Context, client_id: str, expected_version: int) -> None:
    """Delete the client CLIENT_ID and all of its rules."""
    ctx.call(ctx.stub.DeleteClient, api.DeleteClientRequest(client_id=client_id, expected_version=expected_version))
    click.echo(f"deleted client {client_id} and its rules")


# ---------------------------------------------------------------------- rules
@cli.group()
def rule() -> None:
    """A client's rules.

    A rule names which alerts notify which emails: a severity, a source and a name,
    where '*' matches any value.
    """


def rule_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--severity", required=True, help="LOW, MEDIUM, HIGH, CRITICAL or '*'."),
        click.option("--source", required=True, help="The alert's exact source, or '*'."),
        click.option("--name", required=True, help="The alert's exact name, or '*'."),
        click.option("--email", "emails", multiple=True, required=True, metavar="ADDRESS",
                     help="Who is notified; repeat it for each address (1-20)."),
    ]):
        command = option(command)
    return command


@rule.command("create")
@click.option("--client", "client_id", required=True, metavar="CLIENT_ID", help="The client that owns the rule.")
@rule_options
@click.option("--disabled", is_flag=True, help="Create it disabled: it matches nothing until enabled.")
@pass_context
def rule_create(
    ctx: Context, client_id: str, severity: str, source: str, name: str, emails: tuple[str, ...], disabled: bool
) -> None:
    """Create a rule and show it.

    At least one of severity, source and name must not be '*' (quote '*' so that the
    shell does not expand it).
    """
    request = api.CreateRuleRequest(client_id=client_id, severity=severity, source=source, name=name,
                                    emails=list(emails), disabled=disabled)
    ctx.show([ctx.call(ctx.stub.CreateRule, request)], RULE_COLUMNS)


@rule.command("get")
@click.argument("rule_id")
@pass_context
def rule_get(ctx: Context, rule_id: str) -> None:
    """Show the rule RULE_ID (a UUID)."""
    ctx.show([ctx.call(ctx.stub.GetRule, api.GetRuleRequest(rule_id=rule_id))], RULE_COLUMNS)


@rule.command("list")
@click.option("--client", "client_id", default="", metavar="CLIENT_ID", help="Only this client's rules.")
@page_size_option
@every_page_option
@pass_context
def rule_list(ctx: Context, client_id: str, page_size: int, every_page: bool) -> None:
    """List rules, ordered by id."""
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.stub.ListRules,
                        api.ListRulesRequest(client_id=client_id, page_size=page_size, page_token=token))
        return page.rules, page.next_page_token

    ctx.show_pages(fetch_page, every_page, RULE_COLUMNS)


@rule.command("update")
@click.argument("rule_id")
@rule_options
@click.option("--enabled/--disabled", default=True, show_default=True, help="Whether the rule matches alerts.")
@version_option(required=True)
@pass_context
def rule_update(
    ctx: Context,
    rule_id: str,
    severity: str,
    source: str,
    name: str,
    emails: tuple[str, ...],
    enabled: bool,
    expected_version: int,
) -> None:
    """Replace a rule's patterns, emails and flag.

    Replaces the patterns, the emails and the enabled flag of the rule RULE_ID, and
    shows it at its new version. Without --disabled the rule is enabled.
    """
    request = api.UpdateRuleRequest(rule_id=rule_id, severity=severity, source=source, name=name,
                                    emails=list(emails), enabled=enabled, expected_version=expected_version)
    ctx.show([ctx.call(ctx.stub.UpdateRule, request)], RULE_COLUMNS)


@rule.command("delete")
@click.argument("rule_id")
@version_option(required=False)
@pass_context
def rule_delete(ctx: Context, rule_id: str, expected_version: int) -> None:
    """Delete the rule RULE_ID."""
    ctx.call(ctx.stub.DeleteRule, api.DeleteRuleRequest(rule_id=rule_id, expected_version=expected_version))
    click.echo(f"deleted rule {rule_id}")


# ---------------------------------------------------------------------- source grants
@cli.group()
def grant() -> None:
    """Which alerts each client may receive: the sources granted to it.

    A client's rules match only alerts from its granted sources, a rule with source '*'
    too; an alert from a source granted to no client notifies no one. Only an ADMIN key
    grants and revokes; a TENANT key lists its own client's grants.
    """


def grant_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--client", "client_id", required=True, metavar="CLIENT_ID",
                     help="The client granted the source."),
        click.option("--prefix", is_flag=True, help="SOURCE is a prefix: every source that starts with it."),
        click.argument("source"),
    ]):
        command = option(command)
    return command


@grant.command("add")
@grant_options
@pass_context
def grant_add(ctx: Context, client_id: str, prefix: bool, source: str) -> None:
    """Grant the client the alerts of SOURCE, and show the grant.

    SOURCE is an alert's exact source, or with --prefix the start of every source granted
    (e.g. --prefix team-a.). It may not hold '*'. Granting a source already granted shows
    the grant as it is.
    """
    request = api.CreateSourceGrantRequest(client_id=client_id, source=source, prefix=prefix)
    ctx.show([ctx.call(ctx.stub.CreateSourceGrant, request)], GRANT_COLUMNS)


@grant.command("list")
@click.option("--client", "client_id", default="", metavar="CLIENT_ID", help="Only this client's grants.")
@page_size_option
@every_page_option
@pass_context
def grant_list(ctx: Context, client_id: str, page_size: int, every_page: bool) -> None:
    """List the grants you may see (a TENANT key: its client's), by client and source.

    created_by is the key id that granted it, or `migration` for the grants an upgrade gave
    existing clients (the sources their rules named): review those.
    """
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.stub.ListSourceGrants,
                        api.ListSourceGrantsRequest(client_id=client_id, page_size=page_size, page_token=token))
        return page.grants, page.next_page_token

    ctx.show_pages(fetch_page, every_page, GRANT_COLUMNS)


@grant.command("remove")
@grant_options
@pass_context
def grant_remove(ctx: Context, client_id: str, prefix: bool, source: str) -> None:
    """Revoke the client's grant of SOURCE (with --prefix, its prefix grant).

    Its rules stop matching those alerts within about a second. A grant the client does not
    have is NOT_FOUND (exit 4).
    """
    ctx.call(ctx.stub.DeleteSourceGrant,
             api.DeleteSourceGrantRequest(client_id=client_id, source=source, prefix=prefix))
    click.echo(f"revoked the {'prefix' if prefix else 'source'} {source!r} from client {client_id}")


# ---------------------------------------------------------------------- notification policies
@cli.group()
def policy() -> None:
    """How a client's notifications are delivered: its notification policy.

    Notifications of one client with equal values of the policy's group-by fields and the
    same recipients form a group. The first of a new group waits --group-wait for others to
    join, then one email goes out; what joins the group after that goes out together in
    one digest at the end of each --group-interval. Each recipient gets at most
    --max-emails-per-hour emails an hour; beyond that notifications wait for the next
    digest the limit allows, never dropped. A client that never set a policy has the
    platform's default. An ADMIN key acts on any client, a TENANT key on its own.
    """


def client_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option("--client", "client_id", required=True, metavar="CLIENT_ID",
                        help="The client whose notifications these are.")(command)


@policy.command("get")
@client_option
@pass_context
def policy_get(ctx: Context, client_id: str) -> None:
    """Show the client's policy, or the platform's default (is_default yes, version 0).

    max_emails_per_hour `default` is the platform's limit (the sender's setting).
    """
    ctx.show([ctx.call(ctx.policies.GetNotificationPolicy,
                       policies_api.GetNotificationPolicyRequest(client_id=client_id))], POLICY_COLUMNS)


@policy.command("set")
@client_option
@click.option("--group-by", default="", metavar="FIELDS",
              help="Comma-separated, any of severity, source, name and rule: notifications with equal values of "
                   "these (and the same recipients) go out together. Empty (the default): by recipients alone.")
@click.option("--group-wait", required=True, metavar="DURATION", callback=seconds(allow_zero=True),
              help="How long the first notification of a new group waits for others to join: 0s (at once) to 1h, "
                   "e.g. 10s.")
@click.option("--group-interval", required=True, metavar="DURATION", callback=seconds(),
              help="After a group's email, what joins it goes out together at the end of this interval: 1s to 1d, "
                   "e.g. 5m.")
@click.option("--max-emails-per-hour", type=click.IntRange(0, INT32_MAX), default=0, show_default=True,
              metavar="N", help="At most N emails per recipient and hour (1-100000); 0: the platform's default.")
@click.option("--expected-version", "--version", "expected_version", type=click.IntRange(min=0), metavar="VERSION",
              help="The version you read (0: the client has no policy of its own yet); FAILED_PRECONDITION (exit 5) "
                   "if it has changed since. Without it, the current version is read and replaced.")
@pass_context
def policy_set(ctx: Context, client_id: str, group_by: str, group_wait: int, group_interval: int,
               max_emails_per_hour: int, expected_version: int | None) -> None:
    """Set the client's policy, replacing what it had, and show it at its new version.

    --group-wait 0s with no --group-by sends each notification alone, at once. Durations
    are a whole number and a unit: 10s, 5m, 2h, 1d.
    """
    if expected_version is None:
        expected_version = ctx.call(ctx.policies.GetNotificationPolicy,
                                    policies_api.GetNotificationPolicyRequest(client_id=client_id)).version
    request = policies_api.SetNotificationPolicyRequest(
        client_id=client_id, group_by=[field.strip() for field in group_by.split(",") if field.strip()],
        group_wait_seconds=group_wait, group_interval_seconds=group_interval,
        max_emails_per_hour=max_emails_per_hour, expected_version=expected_version)
    ctx.show([ctx.call(ctx.policies.SetNotificationPolicy, request)], POLICY_COLUMNS)


@policy.command("delete")
@client_option
@version_option(required=False)
@pass_context
def policy_delete(ctx: Context, client_id: str, expected_version: int) -> None:
    """Delete the client's policy: the platform's default applies again.

    A client without a policy of its own is NOT_FOUND (exit 4).
    """
    ctx.call(ctx.policies.DeleteNotificationPolicy, policies_api.DeleteNotificationPolicyRequest(
        client_id=client_id, expected_version=expected_version))
    click.echo(f"client {client_id} has the platform's default policy again")


# ---------------------------------------------------------------------- silences
@cli.group()
def silence() -> None:
    """Silences: mute a client's matching notifications for a while.

    A notification that an active silence matches is recorded as SILENCED and sent to no
    one. A silence matches on severity, source and name, each exact or '*' (any), and is
    active from its start until it ends or is expired. An ADMIN key acts on any client's
    silences, a TENANT key on its own client's.
    """


@silence.command("add")
@client_option
@click.option("--severity", default="*", show_default=True, help="LOW, MEDIUM, HIGH, CRITICAL or '*' (any).")
@click.option("--source", default="*", show_default=True, help="The alerts' exact source, or '*' (any).")
@click.option("--name", default="*", show_default=True, help="The alerts' exact name, or '*' (any).")
@click.option("--duration", "lasting", metavar="DURATION", callback=duration(),
              help="How long it lasts from its start: 2h, 30m, 1d.")
@click.option("--ends-at", "ends", metavar="TIME", callback=time_option,
              help="When it ends, ISO 8601 with its offset (2027-01-31T18:00:00Z).")
@click.option("--starts-at", "starts", metavar="TIME", callback=time_option,
              help="When it starts, ISO 8601 with its offset (default: now; a past time is now).")
@click.option("--comment", required=True, help="Why (1-1000 characters): shown to whoever lists silences.")
@pass_context
def silence_add(ctx: Context, client_id: str, severity: str, source: str, name: str, lasting: timedelta | None,
                ends: datetime | None, starts: datetime | None, comment: str) -> None:
    """Create a silence and show it.

    Give --duration or --ends-at. Without --severity, --source and --name it mutes all of
    the client's notifications (a maintenance window). Quote '*' so that the shell does not
    expand it.
    """
    if (lasting is None) == (ends is None):
        raise click.UsageError("give --duration or --ends-at, one of them")
    request = silences_api.CreateSilenceRequest(client_id=client_id, severity=severity, source=source, name=name,
                                                comment=comment)
    if lasting is not None:
        request.duration.FromTimedelta(lasting)
    if ends is not None:
        request.ends_at.FromDatetime(ends)
    if starts is not None:
        request.starts_at.FromDatetime(starts)
    ctx.show([ctx.call(ctx.silences.CreateSilence, request)], SILENCE_COLUMNS)


@silence.command("get")
@click.argument("silence_id")
@pass_context
def silence_get(ctx: Context, silence_id: str) -> None:
    """Show the silence SILENCE_ID (a UUID) and its state."""
    ctx.show([ctx.call(ctx.silences.GetSilence, silences_api.GetSilenceRequest(silence_id=silence_id))],
             SILENCE_COLUMNS)


@silence.command("list")
@click.option("--client", "client_id", default="", metavar="CLIENT_ID", help="Only this client's silences.")
@click.option("--include-expired", is_flag=True,
              help="Expired and ended silences too; without it only pending and active ones.")
@page_size_option
@every_page_option
@pass_context
def silence_list(ctx: Context, client_id: str, include_expired: bool, page_size: int, every_page: bool) -> None:
    """List the silences you may see (a TENANT key: its client's), newest first."""
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.silences.ListSilences, silences_api.ListSilencesRequest(
            client_id=client_id, include_expired=include_expired, page_size=page_size, page_token=token))
        return page.silences, page.next_page_token

    ctx.show_pages(fetch_page, every_page, SILENCE_COLUMNS)


@silence.command("expire")
@click.argument("silence_id")
@pass_context
def silence_expire(ctx: Context, silence_id: str) -> None:
    """End the silence SILENCE_ID now, and show it.

    Whoever expired it is recorded (expired_by). A silence that has ended or was expired
    already is FAILED_PRECONDITION (exit 5).
    """
    ctx.show([ctx.call(ctx.silences.ExpireSilence, silences_api.ExpireSilenceRequest(silence_id=silence_id))],
             SILENCE_COLUMNS)


# ---------------------------------------------------------------------- notifications
@cli.group()
def notification() -> None:
    """Notifications: what was sent to whom and in which email, what was silenced, what failed and why."""


STATUS_CHOICES = ("PENDING", "SENT", "FAILED", "SILENCED")


@notification.command("list")
@click.option("--client", "client_id", default="", metavar="CLIENT_ID", help="Only this client's notifications.")
@click.option("--status", type=click.Choice(STATUS_CHOICES, case_sensitive=False), help="Only this status.")
@click.option("--digest", "digest_id", default="", metavar="DIGEST_ID",
              help="Only the notifications of this digest: those waiting in it, or delivered in its email.")
@page_size_option
@every_page_option
@pass_context
def notification_list(ctx: Context, client_id: str, status: str | None, digest_id: str, page_size: int,
                      every_page: bool) -> None:
    """List notifications, newest first."""
    status_value = (notifications_api.NotificationStatus.Value(f"NOTIFICATION_STATUS_{status.upper()}") if status
                    else notifications_api.NOTIFICATION_STATUS_UNSPECIFIED)
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.notifications.ListNotifications, notifications_api.ListNotificationsRequest(
            client_id=client_id, status=status_value, digest_id=digest_id, page_size=page_size, page_token=token))
        return page.notifications, page.next_page_token

    ctx.show_pages(fetch_page, every_page, NOTIFICATION_COLUMNS)


@notification.command("show")
@click.argument("notification_id")
@pass_context
def notification_show(ctx: Context, notification_id: str) -> None:
    """Show a notification, the email that delivered it, its failure and recipients.

    Shows the notification NOTIFICATION_ID: the digest it waits in or was delivered in
    (digest_id), which email told its recipients (delivered_in: the digest's id, or its own
    when it was sent alone; the id in the email's Message-ID), the silence that muted it
    (silenced_by), why it failed (if it did), and every recipient's outcome (its digest's,
    when it was sent in one): SENT, FAILED for good, or DEFERRED (refused for now, tried
    again).
    """
    shown = ctx.call(ctx.notifications.GetNotification,
                     notifications_api.GetNotificationRequest(notification_id=notification_id))
    show_notification(ctx, shown)


@notification.command("retry")
@click.argument("notification_id")
@pass_context
def notification_retry(ctx: Context, notification_id: str) -> None:
    """Try a FAILED notification again.

    Sends the FAILED notification NOTIFICATION_ID again, to the recipients that did not
    receive it, once what made it fail is fixed. A notification that is not FAILED is
    FAILED_PRECONDITION (exit 5).
    """
    retried = ctx.call(ctx.notifications.RetryNotification,
                       notifications_api.RetryNotificationRequest(notification_id=notification_id))
    show_notification(ctx, retried)


def show_notification(ctx: Context, shown: notifications_api.Notification) -> None:
    ctx.show([shown], NOTIFICATION_COLUMNS)
    if ctx.output_json:
        return
    for label, value in (("failure", shown.failure), ("last error", shown.last_error)):
        if value:
            click.echo(f"{label}: {value}")
    if shown.recipients:
        click.echo()
        ctx.show(shown.recipients, RECIPIENT_COLUMNS)


# ---------------------------------------------------------------------- dead letters
DLQ_HELP = f"""Dead letters: list them, replay them.

Dead letters are the records a worker could never process; it keeps them on
<TOPIC>.dlq with the reason.

TOPIC is the input topic they came from, without any topic prefix: one of
{", ".join(topics.INPUT_TOPICS)}.
"""


@cli.group(help=DLQ_HELP)
def dlq() -> None:
    pass


@dlq.command("list")
@click.argument("topic")
@click.option("--from", "start_offset", type=click.IntRange(min=0), default=0, show_default=True, metavar="OFFSET",
              help="The first dead-letter offset to list (the oldest still kept, if that is later).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, metavar="N",
              help="List at most N dead letters (the server allows 1000).")
@pass_context
def dlq_list(ctx: Context, topic: str, start_offset: int, limit: int) -> None:
    """List a topic's dead letters.

    Lists TOPIC's dead letters in offset order: each one's offset (what `dlq replay`
    takes), when it was dead-lettered, the source record (topic/partition/offset), its
    key, its value's size in bytes, the dead letter it replayed (if it is a replay that
    was rejected again), and why it was rejected. When there are more, stderr says where
    to go on.
    """
    request = dead_letters_api.ListDeadLettersRequest(topic=topic, start_offset=start_offset, max_count=limit)
    page = ctx.call(ctx.dead_letters.ListDeadLetters, request)
    ctx.show(page.dead_letters, DEAD_LETTER_COLUMNS)
    if page.next_offset < page.end_offset:
        click.echo(f"(more: --from {page.next_offset}; the last offset is {page.end_offset - 1})", err=True)


@dlq.command("replay")
@click.argument("topic")
@click.argument("offsets", nargs=-1, required=True, type=click.IntRange(min=0), metavar="OFFSET...")
@pass_context
def dlq_replay(ctx: Context, topic: str, offsets: tuple[int, ...]) -> None:
    """Publish dead letters again to their topic.

    Publishes the dead letters at OFFSET... again to TOPIC, with their original key,
    value and headers (without the dlq.* ones), plus dlq.replay_of naming the dead letter.

    Fix the cause first: a record that is still invalid is dead-lettered again. Each
    offset is published once per command (an offset given twice, once); running the
    command again publishes it again. An offset that is not there is NOT_FOUND (exit 4)
    and then nothing is published.
    """
    request = dead_letters_api.ReplayDeadLettersRequest(topic=topic, offsets=list(offsets))
    replayed = ctx.call(ctx.dead_letters.ReplayDeadLetters, request)
    if ctx.output_json:
        ctx.show([replayed], REPLAY_COLUMNS)
        return
    offsets_text = ", ".join(str(offset) for offset in replayed.offsets)
    click.echo(f"replayed {replayed.replayed} to {replayed.topic}: dead-letter offsets {offsets_text}")


# ---------------------------------------------------------------------- API keys
@cli.group()
def key() -> None:
    """API keys: create, list and revoke them.

    A key is shown once, when it is created; the platform keeps only a hash of it. Lists,
    revocations and `updated_by` name a key by its public key id.
    """


@key.command("create")
@click.option("--admin", is_flag=True, help="An ADMIN key: it manages clients and every key (needs an ADMIN key).")
@click.option("--client", "client_id", default="", metavar="CLIENT_ID",
              help="A TENANT key of this client: its rules, notifications and TENANT keys.")
@click.option("--name", default="", help="What the key is for (at most 200 characters).")
@click.option("--expires-in", "expires_after", metavar="DURATION", callback=expires_in,
              help="The key stops working this long from now: 90d, 12h, 30m or 45s.")
@click.option("--expires-at", "expires_on", metavar="TIME", callback=time_option,
              help="The key stops working at this time, ISO 8601 with its offset (2027-01-31T18:00:00Z).")
@pass_context
def key_create(ctx: Context, admin: bool, client_id: str, name: str, expires_after: datetime | None,
               expires_on: datetime | None) -> None:
    """Create a key and show it, the key itself this once.

    Give --admin or --client. Store the key at once (e.g. in a file for --api-key-file):
    it is not shown again. With --output json the answer holds it as `key`. Without
    --expires-in or --expires-at the key works until it is revoked.

    Only an ADMIN key creates keys, unless the rule-service allows tenant self-service
    (ALERTING_TENANT_KEY_SELF_SERVICE): then a TENANT key creates its client's keys, which
    expire no later than it does.
    """
    if admin == bool(client_id):
        raise click.UsageError("give --admin or --client CLIENT_ID, one of them")
    if expires_after is not None and expires_on is not None:
        raise click.UsageError("give --expires-in or --expires-at, not both")
    request = keys_api.CreateApiKeyRequest(role=keys_api.ROLE_ADMIN if admin else keys_api.ROLE_TENANT,
                                           client_id=client_id, name=name)
    expiry = expires_after or expires_on
    if expiry is not None:
        request.expires_at.FromDatetime(expiry)
    created = ctx.call(ctx.keys.CreateApiKey, request)
    if ctx.output_json:
        click.echo(as_json([created]))
    else:
        ctx.show([created.api_key], API_KEY_COLUMNS)
        click.echo(f"\nkey: {created.key}")
    click.echo("Store the key now: it is not shown again.", err=True)


@key.command("list")
@click.option("--client", "client_id", default="", metavar="CLIENT_ID", help="Only this client's keys.")
@click.option("--include-revoked", is_flag=True,
              help="Revoked and expired keys too; without it only valid keys are listed.")
@page_size_option
@every_page_option
@pass_context
def key_list(ctx: Context, client_id: str, include_revoked: bool, page_size: int, every_page: bool) -> None:
    """List the keys you may see (a TENANT key: its client's), ordered by key id.

    expires_at is empty for a key that does not expire.
    """
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.keys.ListApiKeys, keys_api.ListApiKeysRequest(
            client_id=client_id, include_revoked=include_revoked, page_size=page_size, page_token=token))
        return page.api_keys, page.next_page_token

    ctx.show_pages(fetch_page, every_page, API_KEY_COLUMNS)


@key.command("revoke")
@click.argument("key_id")
@pass_context
def key_revoke(ctx: Context, key_id: str) -> None:
    """Revoke the key KEY_ID (its id, not the key) and show it.

    Every rule-service refuses it within seconds (ALERTING_API_KEY_CACHE_SECONDS, 2 by
    default). Revoking a revoked key changes nothing; the last valid ADMIN key cannot be
    revoked (FAILED_PRECONDITION, exit 5).
    """
    ctx.show([ctx.call(ctx.keys.RevokeApiKey, keys_api.RevokeApiKeyRequest(key_id=key_id))], API_KEY_COLUMNS)


@cli.command("whoami")
@pass_context
def whoami(ctx: Context) -> None:
    """Show the API key in use.

    Shows the key that the calls present: its id, its role, and for a TENANT key its client.
    """
    ctx.show([ctx.call(ctx.keys.WhoAmI, keys_api.WhoAmIRequest())], API_KEY_COLUMNS)


def main() -> None:
    # Named as people call it: click would otherwise name the module the PEX runs (python -m ...).
    cli(prog_name="alertctl")


if __name__ == "__main__":
    main()
