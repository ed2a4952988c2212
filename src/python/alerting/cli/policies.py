"""alertctl policy: how a client's notifications are delivered (its notification policy)."""

from __future__ import annotations

import click

from alerting.cli.shared import INT32_MAX, Context, client_option, pass_context, seconds, version_option
from alerting.v1 import notification_policy_service_pb2 as api
from alerting.v1.notification_policy_service_pb2_grpc import NotificationPolicyServiceStub

POLICY_COLUMNS = ("client_id", "group_by", "group_wait_seconds", "group_interval_seconds", "max_emails_per_hour",
                  "is_default", "version", "updated_by")


@click.group()
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


@policy.command("get")
@client_option
@pass_context
def policy_get(ctx: Context, client_id: str) -> None:
    """Show the client's policy, or the platform's default (is_default yes, version 0).

    max_emails_per_hour `default` is the platform's limit (the sender's setting).
    """
    ctx.show([ctx.call(ctx.stub(NotificationPolicyServiceStub).GetNotificationPolicy,
                       api.GetNotificationPolicyRequest(client_id=client_id))], POLICY_COLUMNS)


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
    policies = ctx.stub(NotificationPolicyServiceStub)
    if expected_version is None:
        expected_version = ctx.call(policies.GetNotificationPolicy,
                                    api.GetNotificationPolicyRequest(client_id=client_id)).version
    request = api.SetNotificationPolicyRequest(
        client_id=client_id, group_by=[field.strip() for field in group_by.split(",") if field.strip()],
        group_wait_seconds=group_wait, group_interval_seconds=group_interval,
        max_emails_per_hour=max_emails_per_hour, expected_version=expected_version)
    ctx.show([ctx.call(policies.SetNotificationPolicy, request)], POLICY_COLUMNS)


@policy.command("delete")
@client_option
@version_option(required=False)
@pass_context
def policy_delete(ctx: Context, client_id: str, expected_version: int) -> None:
    """Delete the client's policy: the platform's default applies again.

    A client without a policy of its own is NOT_FOUND (exit 4).
    """
    ctx.call(ctx.stub(NotificationPolicyServiceStub).DeleteNotificationPolicy,
             api.DeleteNotificationPolicyRequest(client_id=client_id, expected_version=expected_version))
    click.echo(f"client {client_id} has the platform's default policy again")
