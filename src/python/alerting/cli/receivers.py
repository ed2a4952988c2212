"""alertctl receiver: a client's named endpoints (email addresses, webhooks, Slack), which its
rules name."""

from __future__ import annotations

import click

from alerting.cli.formatting import as_json
from alerting.cli.shared import Context, client_filter, client_option, paging_options, pass_context, version_option
from alerting.v1 import receiver_service_pb2 as api
from alerting.v1.receiver_service_pb2_grpc import ReceiverServiceStub

RECEIVER_COLUMNS = ("receiver_id", "client_id", "kind", "name", "version", "updated_by", "url", "addresses")


@click.group()
def receiver() -> None:
    """Receivers: a client's named endpoints, beside a rule's own addresses.

    A rule names receivers (alertctl rule create --receiver ID) and its notifications are
    delivered to each: an email receiver's addresses get the email a rule's addresses get,
    a webhook a signed JSON document (schema alerting.webhook/v1), a Slack incoming webhook
    a message. URLs are HTTPS to public addresses unless the
    operator allows more. An ADMIN key acts on any client's receivers, a TENANT key on its
    own client's.
    """


def show_with_secret(ctx: Context, answer: api.CreateReceiverResponse | api.RotateReceiverSecretResponse) -> None:
    """The receiver, and a webhook's signing secret this once."""
    if ctx.output_json:
        click.echo(as_json([answer]))
    else:
        ctx.show([answer.receiver], RECEIVER_COLUMNS)
        if answer.signing_secret:
            click.echo(f"\nsigning secret: {answer.signing_secret}")
    if answer.signing_secret:
        click.echo("Store the signing secret now, where the webhook verifies requests: it is not shown again.",
                   err=True)


@receiver.command("add")
@client_option
@click.option("--name", required=True, help="Unique within the client (1-256 characters).")
@click.option("--webhook", "webhook_url", metavar="URL", help="A webhook: requests are signed with a secret.")
@click.option("--slack", "slack_url", metavar="URL", help="A Slack incoming webhook's URL.")
@click.option("--email", "addresses", multiple=True, metavar="ADDRESS",
              help="An email receiver's address; repeat for each (1-100).")
@pass_context
def receiver_add(ctx: Context, client_id: str, name: str, webhook_url: str | None, slack_url: str | None,
                 addresses: tuple[str, ...]) -> None:
    """Create a receiver and show it; a webhook's signing secret this once.

    Give --webhook, --slack or --email (repeated). With --output json the answer holds the
    secret as `signing_secret`.
    """
    if [webhook_url is not None, slack_url is not None, bool(addresses)].count(True) != 1:
        raise click.UsageError("give --webhook URL, --slack URL or --email ADDRESS (repeated), one of them")
    kind = (api.RECEIVER_KIND_EMAIL if addresses else
            api.RECEIVER_KIND_WEBHOOK if webhook_url is not None else api.RECEIVER_KIND_SLACK)
    show_with_secret(ctx, ctx.call(ctx.stub(ReceiverServiceStub).CreateReceiver, api.CreateReceiverRequest(
        client_id=client_id, name=name, kind=kind, url=webhook_url or slack_url or "", addresses=list(addresses))))


@receiver.command("get")
@click.argument("receiver_id")
@pass_context
def receiver_get(ctx: Context, receiver_id: str) -> None:
    """Show the receiver RECEIVER_ID (a UUID)."""
    ctx.show([ctx.call(ctx.stub(ReceiverServiceStub).GetReceiver, api.GetReceiverRequest(receiver_id=receiver_id))],
             RECEIVER_COLUMNS)


@receiver.command("list")
@client_filter("receivers")
@paging_options
@pass_context
def receiver_list(ctx: Context, client_id: str, page_size: int, every_page: bool) -> None:
    """List the receivers you may see (a TENANT key: its client's), by id."""
    ctx.show_list(ctx.stub(ReceiverServiceStub).ListReceivers, lambda token: api.ListReceiversRequest(
        client_id=client_id, page_size=page_size, page_token=token), "receivers", every_page, RECEIVER_COLUMNS)


@receiver.command("rotate-secret")
@click.argument("receiver_id")
@pass_context
def receiver_rotate_secret(ctx: Context, receiver_id: str) -> None:
    """Give the webhook RECEIVER_ID a new signing secret, in force at once, and show it once."""
    show_with_secret(ctx, ctx.call(ctx.stub(ReceiverServiceStub).RotateReceiverSecret,
                                   api.RotateReceiverSecretRequest(receiver_id=receiver_id)))


@receiver.command("update")
@click.argument("receiver_id")
@click.option("--url", default="", metavar="URL", help="A webhook's or Slack receiver's new URL.")
@click.option("--email", "addresses", multiple=True, metavar="ADDRESS",
              help="An email receiver's addresses, replacing the old; repeat for each.")
@version_option(required=False)
@pass_context
def receiver_update(ctx: Context, receiver_id: str, url: str, addresses: tuple[str, ...],
                    expected_version: int) -> None:
    """Point the receiver RECEIVER_ID elsewhere: a new URL, or new addresses.

    Every delivery to it uses the change from its next attempt on.
    """
    if bool(url) == bool(addresses):
        raise click.UsageError("give --url URL or --email ADDRESS (repeated), one of them")
    ctx.show([ctx.call(ctx.stub(ReceiverServiceStub).UpdateReceiver, api.UpdateReceiverRequest(
        receiver_id=receiver_id, url=url, addresses=list(addresses), expected_version=expected_version))],
        RECEIVER_COLUMNS)


@receiver.command("remove")
@click.argument("receiver_id")
@pass_context
def receiver_remove(ctx: Context, receiver_id: str) -> None:
    """Delete the receiver RECEIVER_ID; refused (exit 5) while a rule names it."""
    ctx.call(ctx.stub(ReceiverServiceStub).DeleteReceiver, api.DeleteReceiverRequest(receiver_id=receiver_id))
    click.echo(f"deleted receiver {receiver_id}")
