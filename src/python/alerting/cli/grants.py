"""alertctl grant: the sources granted to each client, whose alerts its rules may match."""

from __future__ import annotations

from collections.abc import Callable

import click

from alerting.cli.shared import Context, client_filter, paging_options, pass_context
from alerting.v1 import rule_service_pb2 as api
from alerting.v1.rule_service_pb2_grpc import RuleServiceStub

# The source last: free text.
GRANT_COLUMNS = ("client_id", "prefix", "created_by", "created_at", "source")


@click.group()
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
    ctx.show([ctx.call(ctx.stub(RuleServiceStub).CreateSourceGrant, request)], GRANT_COLUMNS)


@grant.command("list")
@client_filter("grants")
@paging_options
@pass_context
def grant_list(ctx: Context, client_id: str, page_size: int, every_page: bool) -> None:
    """List the grants you may see (a TENANT key: its client's), by client and source.

    created_by is the key id that granted it, or `migration` for the grants an upgrade gave
    existing clients (the sources their rules named): review those.
    """
    ctx.show_list(ctx.stub(RuleServiceStub).ListSourceGrants,
                  lambda token: api.ListSourceGrantsRequest(client_id=client_id, page_size=page_size, page_token=token),
                  "grants", every_page, GRANT_COLUMNS)


@grant.command("remove")
@grant_options
@pass_context
def grant_remove(ctx: Context, client_id: str, prefix: bool, source: str) -> None:
    """Revoke the client's grant of SOURCE (with --prefix, its prefix grant).

    Its rules stop matching those alerts within about a second. A grant the client does not
    have is NOT_FOUND (exit 4).
    """
    ctx.call(ctx.stub(RuleServiceStub).DeleteSourceGrant,
             api.DeleteSourceGrantRequest(client_id=client_id, source=source, prefix=prefix))
    click.echo(f"revoked the {'prefix' if prefix else 'source'} {source!r} from client {client_id}")
