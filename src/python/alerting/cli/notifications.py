"""alertctl notification: what was sent to whom and in which email, what was silenced, what
failed and why, and a retry of what failed."""

from __future__ import annotations

import click

from alerting.cli.shared import Context, client_filter, paging_options, pass_context
from alerting.v1 import notification_service_pb2 as api
from alerting.v1.notification_service_pb2_grpc import NotificationServiceStub

# delivered_in: the id of the email that told the recipients (its digest's, or its own when sent alone).
NOTIFICATION_COLUMNS = ("notification_id", "client_id", "alert_id", "status", "attempts", "created_at", "sent_at",
                        "digest_id", "delivered_in", "silenced_by")
RECIPIENT_COLUMNS = ("email", "status", "attempts", "response")
STATUS_CHOICES = ("PENDING", "SENT", "FAILED", "SILENCED")


@click.group()
def notification() -> None:
    """Notifications: what was sent to whom and in which email, what was silenced, what failed and why."""


@notification.command("list")
@client_filter("notifications")
@click.option("--status", type=click.Choice(STATUS_CHOICES, case_sensitive=False), help="Only this status.")
@click.option("--digest", "digest_id", default="", metavar="DIGEST_ID",
              help="Only the notifications of this digest: those waiting in it, or delivered in its email.")
@paging_options
@pass_context
def notification_list(ctx: Context, client_id: str, status: str | None, digest_id: str, page_size: int,
                      every_page: bool) -> None:
    """List notifications, newest first."""
    status_value = (api.NotificationStatus.Value(f"NOTIFICATION_STATUS_{status.upper()}") if status
                    else api.NOTIFICATION_STATUS_UNSPECIFIED)
    ctx.show_list(ctx.stub(NotificationServiceStub).ListNotifications, lambda token: api.ListNotificationsRequest(
        client_id=client_id, status=status_value, digest_id=digest_id, page_size=page_size, page_token=token),
        "notifications", every_page, NOTIFICATION_COLUMNS)


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
    shown = ctx.call(ctx.stub(NotificationServiceStub).GetNotification,
                     api.GetNotificationRequest(notification_id=notification_id))
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
    retried = ctx.call(ctx.stub(NotificationServiceStub).RetryNotification,
                       api.RetryNotificationRequest(notification_id=notification_id))
    show_notification(ctx, retried)


def show_notification(ctx: Context, shown: api.Notification) -> None:
    ctx.show([shown], NOTIFICATION_COLUMNS)
    if ctx.output_json:
        return
    for label, value in (("failure", shown.failure), ("last error", shown.last_error)):
        if value:
            click.echo(f"{label}: {value}")
    if shown.recipients:
        click.echo()
        ctx.show(shown.recipients, RECIPIENT_COLUMNS)
