"""alertctl whoami: the API key the calls present."""

from __future__ import annotations

import click

from alerting.cli.keys import API_KEY_COLUMNS
from alerting.cli.shared import Context, pass_context
from alerting.v1 import api_key_service_pb2 as api
from alerting.v1.api_key_service_pb2_grpc import ApiKeyServiceStub


@click.command("whoami")
@pass_context
def whoami(ctx: Context) -> None:
    """Show the API key in use.

    Shows the key that the calls present: its id, its role, and for a TENANT key its client.
    """
    ctx.show([ctx.call(ctx.stub(ApiKeyServiceStub).WhoAmI, api.WhoAmIRequest())], API_KEY_COLUMNS)
