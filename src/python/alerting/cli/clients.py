"""alertctl client: tenants, each with its rules and its notifications."""

from __future__ import annotations

import click

from alerting.cli.shared import Context, paging_options, pass_context, version_option
from alerting.v1 import rule_service_pb2 as api
from alerting.v1.rule_service_pb2_grpc import RuleServiceStub

# updated_by: the id of the API key that made the last change.
CLIENT_COLUMNS = ("client_id", "name", "version", "updated_by")


@click.group()
def client() -> None:
    """Tenants: each owns rules and gets their notifications."""


@client.command("create")
@click.argument("name")
@pass_context
def client_create(ctx: Context, name: str) -> None:
    """Create a client called NAME (1-200 characters) and show it."""
    created = ctx.call(ctx.stub(RuleServiceStub).CreateClient, api.CreateClientRequest(name=name))
    ctx.show([created], CLIENT_COLUMNS)


@client.command("get")
@click.argument("client_id")
@pass_context
def client_get(ctx: Context, client_id: str) -> None:
    """Show the client CLIENT_ID (a UUID)."""
    shown = ctx.call(ctx.stub(RuleServiceStub).GetClient, api.GetClientRequest(client_id=client_id))
    ctx.show([shown], CLIENT_COLUMNS)


@client.command("list")
@paging_options
@pass_context
def client_list(ctx: Context, page_size: int, every_page: bool) -> None:
    """List clients, ordered by id."""
    ctx.show_list(ctx.stub(RuleServiceStub).ListClients,
                  lambda token: api.ListClientsRequest(page_size=page_size, page_token=token),
                  "clients", every_page, CLIENT_COLUMNS)


@client.command("update")
@click.argument("client_id")
@click.option("--name", required=True, help="The new name (1-200 characters).")
@version_option(required=True)
@pass_context
def client_update(ctx: Context, client_id: str, name: str, expected_version: int) -> None:
    """Rename the client CLIENT_ID and show it at its new version."""
    request = api.UpdateClientRequest(client_id=client_id, name=name, expected_version=expected_version)
    ctx.show([ctx.call(ctx.stub(RuleServiceStub).UpdateClient, request)], CLIENT_COLUMNS)


@client.command("delete")
@click.argument("client_id")
@version_option(required=False)
@pass_context
def client_delete(ctx: Context, client_id: str, expected_version: int) -> None:
    """Delete the client CLIENT_ID and all of its rules."""
    request = api.DeleteClientRequest(client_id=client_id, expected_version=expected_version)
    ctx.call(ctx.stub(RuleServiceStub).DeleteClient, request)
    click.echo(f"deleted client {client_id} and its rules")
