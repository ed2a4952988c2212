"""alertctl: manage clients and rules through the rule-service's gRPC API.

    alertctl client create NAME | get ID | list | update ID --name N --version V | delete ID
    alertctl rule create --client ID --severity S --source S --name N --email E... | get | list | update | delete
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import click
import grpc
from google.protobuf.message import Message

from alerting.cli.formatting import (
    CLIENT_COLUMNS,
    NOTIFICATION_COLUMNS,
    RECIPIENT_COLUMNS,
    RULE_COLUMNS,
    as_json,
    table,
)
from alerting.common.settings import Settings
from alerting.v1 import notification_service_pb2 as notifications_api
from alerting.v1 import notification_service_pb2_grpc, rule_service_pb2_grpc
from alerting.v1 import rule_service_pb2 as api

Response = TypeVar("Response")


class Context:
    def __init__(self, address: str, output_json: bool) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = rule_service_pb2_grpc.RuleServiceStub(self.channel)
        self.notifications = notification_service_pb2_grpc.NotificationServiceStub(self.channel)
        self.output_json = output_json

    def show(self, messages: Sequence[Message], columns: tuple[str, ...]) -> None:
        click.echo(as_json(messages) if self.output_json else table(messages, columns))

    def call(self, method: Callable[..., Response], request: Message) -> Response:
        try:
            return method(request, timeout=30)
        except grpc.RpcError as error:
            raise click.ClickException(f"{error.code().name}: {error.details()}") from error

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


@click.group()
@click.option("--address", default=lambda: Settings().rule_service_address, show_default="127.0.0.1:50051",
              help="rule-service host:port (ALERTING_RULE_SERVICE_ADDRESS).")
@click.option("--json", "output_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def cli(context: click.Context, address: str, output_json: bool) -> None:
    context.obj = Context(address, output_json)
    context.call_on_close(context.obj.channel.close)


@cli.group()
def client() -> None:
    """Tenants."""


@client.command("create")
@click.argument("name")
@pass_context
def client_create(ctx: Context, name: str) -> None:
    ctx.show([ctx.call(ctx.stub.CreateClient, api.CreateClientRequest(name=name))], CLIENT_COLUMNS)


@client.command("get")
@click.argument("client_id")
@pass_context
def client_get(ctx: Context, client_id: str) -> None:
    ctx.show([ctx.call(ctx.stub.GetClient, api.GetClientRequest(client_id=client_id))], CLIENT_COLUMNS)


@client.command("list")
@click.option("--page-size", default=100, show_default=True)
@click.option("--all", "every_page", is_flag=True, help="Follow every page.")
@pass_context
def client_list(ctx: Context, page_size: int, every_page: bool) -> None:
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.stub.ListClients, api.ListClientsRequest(page_size=page_size, page_token=token))
        return page.clients, page.next_page_token

    ctx.show_pages(fetch_page, every_page, CLIENT_COLUMNS)


@client.command("update")
@click.argument("client_id")
@click.option("--name", required=True)
@click.option("--version", "expected_version", type=int, required=True, help="The version you are changing.")
@pass_context
def client_update(ctx: Context, client_id: str, name: str, expected_version: int) -> None:
    request = api.UpdateClientRequest(client_id=client_id, name=name, expected_version=expected_version)
    ctx.show([ctx.call(ctx.stub.UpdateClient, request)], CLIENT_COLUMNS)


@client.command("delete")
@click.argument("client_id")
@click.option("--version", "expected_version", type=int, default=0, help="Only if still at this version.")
@pass_context
def client_delete(ctx: Context, client_id: str, expected_version: int) -> None:
    ctx.call(ctx.stub.DeleteClient, api.DeleteClientRequest(client_id=client_id, expected_version=expected_version))
    click.echo(f"deleted client {client_id} and its rules")


@cli.group()
def rule() -> None:
    """A client's rules; '*' matches any value."""


def rule_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--severity", required=True, help="LOW, MEDIUM, HIGH, CRITICAL or *."),
        click.option("--source", required=True, help="Exact source or *."),
        click.option("--name", required=True, help="Exact alert name or *."),
        click.option("--email", "emails", multiple=True, required=True, help="Repeatable."),
    ]):
        command = option(command)
    return command


@rule.command("create")
@click.option("--client", "client_id", required=True)
@rule_options
@click.option("--disabled", is_flag=True)
@pass_context
def rule_create(
    ctx: Context, client_id: str, severity: str, source: str, name: str, emails: tuple[str, ...], disabled: bool
) -> None:
    request = api.CreateRuleRequest(client_id=client_id, severity=severity, source=source, name=name,
                                    emails=list(emails), disabled=disabled)
    ctx.show([ctx.call(ctx.stub.CreateRule, request)], RULE_COLUMNS)


@rule.command("get")
@click.argument("rule_id")
@pass_context
def rule_get(ctx: Context, rule_id: str) -> None:
    ctx.show([ctx.call(ctx.stub.GetRule, api.GetRuleRequest(rule_id=rule_id))], RULE_COLUMNS)


@rule.command("list")
@click.option("--client", "client_id", default="", help="Only this client's rules.")
@click.option("--page-size", default=100, show_default=True)
@click.option("--all", "every_page", is_flag=True, help="Follow every page.")
@pass_context
def rule_list(ctx: Context, client_id: str, page_size: int, every_page: bool) -> None:
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.stub.ListRules,
                        api.ListRulesRequest(client_id=client_id, page_size=page_size, page_token=token))
        return page.rules, page.next_page_token

    ctx.show_pages(fetch_page, every_page, RULE_COLUMNS)


@rule.command("update")
@click.argument("rule_id")
@rule_options
@click.option("--enabled/--disabled", default=True)
@click.option("--version", "expected_version", type=int, required=True, help="The version you are changing.")
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
    request = api.UpdateRuleRequest(rule_id=rule_id, severity=severity, source=source, name=name,
                                    emails=list(emails), enabled=enabled, expected_version=expected_version)
    ctx.show([ctx.call(ctx.stub.UpdateRule, request)], RULE_COLUMNS)


@rule.command("delete")
@click.argument("rule_id")
@click.option("--version", "expected_version", type=int, default=0, help="Only if still at this version.")
@pass_context
def rule_delete(ctx: Context, rule_id: str, expected_version: int) -> None:
    ctx.call(ctx.stub.DeleteRule, api.DeleteRuleRequest(rule_id=rule_id, expected_version=expected_version))
    click.echo(f"deleted rule {rule_id}")


@cli.group()
def notification() -> None:
    """Notifications: what was sent to whom, what failed and why."""


STATUS_CHOICES = ("PENDING", "SENT", "FAILED")


@notification.command("list")
@click.option("--client", "client_id", default="", help="Only this client's notifications.")
@click.option("--status", type=click.Choice(STATUS_CHOICES, case_sensitive=False), help="Only this status.")
@click.option("--page-size", default=100, show_default=True)
@click.option("--all", "every_page", is_flag=True, help="Follow every page.")
@pass_context
def notification_list(ctx: Context, client_id: str, status: str | None, page_size: int, every_page: bool) -> None:
    """Notifications, newest first."""
    status_value = (notifications_api.NotificationStatus.Value(f"NOTIFICATION_STATUS_{status.upper()}") if status
                    else notifications_api.NOTIFICATION_STATUS_UNSPECIFIED)
    def fetch_page(token: str) -> tuple[Sequence[Message], str]:
        page = ctx.call(ctx.notifications.ListNotifications, notifications_api.ListNotificationsRequest(
            client_id=client_id, status=status_value, page_size=page_size, page_token=token))
        return page.notifications, page.next_page_token

    ctx.show_pages(fetch_page, every_page, NOTIFICATION_COLUMNS)


@notification.command("show")
@click.argument("notification_id")
@pass_context
def notification_show(ctx: Context, notification_id: str) -> None:
    """One notification, with its alert and every recipient's outcome."""
    shown = ctx.call(ctx.notifications.GetNotification,
                     notifications_api.GetNotificationRequest(notification_id=notification_id))
    show_notification(ctx, shown)


@notification.command("retry")
@click.argument("notification_id")
@pass_context
def notification_retry(ctx: Context, notification_id: str) -> None:
    """Try a FAILED notification again (after fixing what made it fail)."""
    retried = ctx.call(ctx.notifications.RetryNotification,
                       notifications_api.RetryNotificationRequest(notification_id=notification_id))
    show_notification(ctx, retried)


def show_notification(ctx: Context, shown: notifications_api.Notification) -> None:
    if ctx.output_json:
        ctx.show([shown], NOTIFICATION_COLUMNS)
        return
    ctx.show([shown], NOTIFICATION_COLUMNS)
    for label, value in (("failure", shown.failure), ("last error", shown.last_error)):
        if value:
            click.echo(f"{label}: {value}")
    if shown.recipients:
        click.echo()
        ctx.show(shown.recipients, RECIPIENT_COLUMNS)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
