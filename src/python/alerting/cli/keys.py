"""alertctl key: API keys created (each shown once), listed and revoked."""

from __future__ import annotations

from datetime import datetime

import click

from alerting.cli.formatting import as_json
from alerting.cli.shared import Context, client_filter, expires_in, paging_options, pass_context, time_option
from alerting.v1 import api_key_service_pb2 as api
from alerting.v1.api_key_service_pb2_grpc import ApiKeyServiceStub

# The name last, as free text. Never the key itself: it is shown once, by `key create`.
API_KEY_COLUMNS = ("key_id", "role", "client_id", "created_by", "created_at", "expires_at", "revoked_at", "name")


@click.group()
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
    request = api.CreateApiKeyRequest(role=api.ROLE_ADMIN if admin else api.ROLE_TENANT, client_id=client_id,
                                      name=name)
    expiry = expires_after or expires_on
    if expiry is not None:
        request.expires_at.FromDatetime(expiry)
    created = ctx.call(ctx.stub(ApiKeyServiceStub).CreateApiKey, request)
    if ctx.output_json:
        click.echo(as_json([created]))
    else:
        ctx.show([created.api_key], API_KEY_COLUMNS)
        click.echo(f"\nkey: {created.key}")
    click.echo("Store the key now: it is not shown again.", err=True)


@key.command("list")
@client_filter("keys")
@click.option("--include-revoked", is_flag=True,
              help="Revoked and expired keys too; without it only valid keys are listed.")
@paging_options
@pass_context
def key_list(ctx: Context, client_id: str, include_revoked: bool, page_size: int, every_page: bool) -> None:
    """List the keys you may see (a TENANT key: its client's), ordered by key id.

    expires_at is empty for a key that does not expire.
    """
    ctx.show_list(ctx.stub(ApiKeyServiceStub).ListApiKeys, lambda token: api.ListApiKeysRequest(
        client_id=client_id, include_revoked=include_revoked, page_size=page_size, page_token=token),
        "api_keys", every_page, API_KEY_COLUMNS)


@key.command("revoke")
@click.argument("key_id")
@pass_context
def key_revoke(ctx: Context, key_id: str) -> None:
    """Revoke the key KEY_ID (its id, not the key) and show it.

    Every rule-service refuses it within seconds (ALERTING_API_KEY_CACHE_SECONDS, 2 by
    default). Revoking a revoked key changes nothing; the last valid ADMIN key cannot be
    revoked (FAILED_PRECONDITION, exit 5).
    """
    revoked = ctx.call(ctx.stub(ApiKeyServiceStub).RevokeApiKey, api.RevokeApiKeyRequest(key_id=key_id))
    ctx.show([revoked], API_KEY_COLUMNS)
