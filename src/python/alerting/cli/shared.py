"""What every alertctl command module uses: the connection to the rule-service and the
`Context` each command gets (a call and how its failure ends the command, the output), and
the options and option values that several commands share.

The channel (TLS, the key on every call) is alerting/common/grpc_client.py's. How a failed
call exits is alerting/cli/exit_codes.py; `alertctl --help` shows the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
import grpc
from click.core import ParameterSource
from google.protobuf.message import Message
from pydantic import ValidationError

from alerting.cli import exit_codes
from alerting.cli.formatting import as_json, table
from alerting.common.grpc_client import blocking_channel
from alerting.common.settings import RuleServiceClientSettings, secret_value

Response = TypeVar("Response")
Stub = TypeVar("Stub")
Command = TypeVar("Command", bound=Callable[..., None])
OUTPUTS = ("table", "json")
DEFAULT_TIMEOUT_SECONDS = 30.0
GIVE_A_KEY = "--api-key-file PATH or ALERTING_API_KEY_FILE (or ALERTING_API_KEY)"


class ListPage(Protocol):
    """A page of a list as every List RPC answers: its items, and the token of the next page."""

    @property
    def next_page_token(self) -> str: ...


class Context:
    """What every command shares: the channel, the deadline of each call, the output format,
    and whether a key goes with the calls."""

    def __init__(self, channel: grpc.Channel, has_key: bool, timeout: float, output: str) -> None:
        self.channel = channel
        self.has_key = has_key
        self.timeout = timeout
        self.output = output

    def stub(self, stub_class: Callable[[grpc.Channel], Stub]) -> Stub:
        """A client of one of the rule-service's services (e.g. RuleServiceStub) on the channel."""
        return stub_class(self.channel)

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

    def show_list(self, list_method: Callable[..., ListPage], page_request: Callable[[str], Message], items: str,
                  every_page: bool, columns: tuple[str, ...]) -> None:
        """Show the first page of a list, or with `every_page` every page: `list_method`
        answers `page_request(token)` with a page whose repeated field `items` it shows and
        whose next_page_token asks for the next ("" after the last; "" asks for the first)."""
        shown: list[Message] = []
        token = ""
        while True:
            page = self.call(list_method, page_request(token))
            shown += getattr(page, items)
            token = page.next_page_token
            if not (token and every_page):
                break
        self.show(shown, columns)
        if token:
            click.echo("(more: --all to list every page)", err=True)


pass_context = click.make_pass_decorator(Context)


# ---------------------------------------------------------------------- the global options
def read_key_file(context: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """--api-key-file's key; an empty file is a usage error (not a silent fall-back to the environment)."""
    if path is None:
        return None
    key = Path(path).read_text(encoding="utf-8").strip()
    if not key:
        raise click.BadParameter(f"{path} is empty", context, param)
    return key


def global_options(command: Command) -> Command:
    """The options before any command: where the rule-service is, how to reach it and with
    which key, and the output's format."""
    for option in reversed([
        click.option("--address", metavar="HOST:PORT",
                     help="The rule-service's gRPC address (default: ALERTING_RULE_SERVICE_ADDRESS, else "
                          "127.0.0.1:50051)."),
        click.option("--api-key-file", "api_key", type=click.Path(exists=True, dir_okay=False),
                     callback=read_key_file, metavar="PATH",
                     help="A file holding the API key that every call presents (default: ALERTING_API_KEY, or "
                          "the file ALERTING_API_KEY_FILE names)."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
                     help="The CA certificate (PEM) that the rule-service's TLS certificate is checked against "
                          "(default: ALERTING_TLS_CA_FILE, else the system's CAs)."),
        click.option("--plaintext", is_flag=True,
                     help="Connect without TLS, to a rule-service that serves plaintext (default: TLS unless "
                          "ALERTING_RULE_SERVICE_TLS=false)."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT_SECONDS,
                     show_default=True, metavar="SECONDS",
                     help="Deadline of each call to the server; past it the command fails with DEADLINE_EXCEEDED "
                          "(exit 8)."),
        click.option("--output", type=click.Choice(OUTPUTS), default="table", show_default=True,
                     help="table: aligned columns for people; json: a JSON array in protobuf's JSON mapping, for "
                          "scripts."),
        click.option("--json", "json_alias", is_flag=True, help="The same as --output json."),
    ]):
        command = option(command)
    return command


def client_settings(
    address: str | None, api_key: str | None, ca_file: str | None, plaintext: bool,
) -> RuleServiceClientSettings:
    """The ALERTING_* settings with the global options over them. A bad setting is a usage
    error that names the variable but not its value: values include secrets."""
    given: dict[str, Any] = {"rule_service_address": address, "api_key": api_key, "tls_ca_file": ca_file,
                             "rule_service_tls": False if plaintext else None}
    try:
        return RuleServiceClientSettings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        raise click.UsageError("; ".join(
            (f"ALERTING_{'_'.join(str(part) for part in problem['loc']).upper()}: " if problem["loc"] else "")
            + problem["msg"].removeprefix("Value error, ")
            for problem in error.errors(include_url=False, include_input=False, include_context=False)
        )) from None


def connect(context: click.Context, address: str | None, api_key: str | None, ca_file: str | None,
            plaintext: bool, timeout: float, output: str, json_alias: bool) -> None:
    """Open the channel the global options describe, closed when the command ends, and give
    the commands their Context."""
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


# ---------------------------------------------------------------------- options of several commands
def paging_options(command: Command) -> Command:
    """A list's --page-size and --all (as `page_size` and `every_page`)."""
    command = click.option("--all", "every_page", is_flag=True,
                           help="Follow every page; without it only the first page is shown.")(command)
    return click.option("--page-size", default=100, show_default=True, metavar="N",
                        help="Items per request to the server (at most 1000).")(command)


def version_option(required: bool) -> Callable[[Command], Command]:
    if required:
        return click.option("--version", "expected_version", type=int, required=True, metavar="VERSION",
                            help="The version you read and are changing; FAILED_PRECONDITION (exit 5) if it "
                                 "has changed since.")
    return click.option("--version", "expected_version", type=int, default=0, show_default=True, metavar="VERSION",
                        help="Only if it is still at this version (exit 5 otherwise); 0 means any version.")


def client_filter(items: str) -> Callable[[Command], Command]:
    """A list's --client: only that client's `items`."""
    return click.option("--client", "client_id", default="", metavar="CLIENT_ID", help=f"Only this client's {items}.")


def client_option(command: Command) -> Command:
    return click.option("--client", "client_id", required=True, metavar="CLIENT_ID",
                        help="The client whose notifications these are.")(command)


# ---------------------------------------------------------------------- times and lengths of time
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
