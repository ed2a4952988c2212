"""alertctl silence: mute a client's matching notifications for a while."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from alerting.cli.shared import (
    Context,
    client_filter,
    client_option,
    duration,
    paging_options,
    pass_context,
    time_option,
)
from alerting.v1 import silence_service_pb2 as api
from alerting.v1.silence_service_pb2_grpc import SilenceServiceStub

# Free text last: the matchers and the comment.
SILENCE_COLUMNS = ("silence_id", "client_id", "state", "severity", "starts_at", "ends_at", "created_by", "expired_by",
                   "source", "name", "comment")


@click.group()
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
    request = api.CreateSilenceRequest(client_id=client_id, severity=severity, source=source, name=name,
                                       comment=comment)
    if lasting is not None:
        request.duration.FromTimedelta(lasting)
    if ends is not None:
        request.ends_at.FromDatetime(ends)
    if starts is not None:
        request.starts_at.FromDatetime(starts)
    ctx.show([ctx.call(ctx.stub(SilenceServiceStub).CreateSilence, request)], SILENCE_COLUMNS)


@silence.command("get")
@click.argument("silence_id")
@pass_context
def silence_get(ctx: Context, silence_id: str) -> None:
    """Show the silence SILENCE_ID (a UUID) and its state."""
    ctx.show([ctx.call(ctx.stub(SilenceServiceStub).GetSilence, api.GetSilenceRequest(silence_id=silence_id))],
             SILENCE_COLUMNS)


@silence.command("list")
@client_filter("silences")
@click.option("--include-expired", is_flag=True,
              help="Expired and ended silences too; without it only pending and active ones.")
@paging_options
@pass_context
def silence_list(ctx: Context, client_id: str, include_expired: bool, page_size: int, every_page: bool) -> None:
    """List the silences you may see (a TENANT key: its client's), newest first."""
    ctx.show_list(ctx.stub(SilenceServiceStub).ListSilences, lambda token: api.ListSilencesRequest(
        client_id=client_id, include_expired=include_expired, page_size=page_size, page_token=token),
        "silences", every_page, SILENCE_COLUMNS)


@silence.command("expire")
@click.argument("silence_id")
@pass_context
def silence_expire(ctx: Context, silence_id: str) -> None:
    """End the silence SILENCE_ID now, and show it.

    Whoever expired it is recorded (expired_by). A silence that has ended or was expired
    already is FAILED_PRECONDITION (exit 5).
    """
    ctx.show([ctx.call(ctx.stub(SilenceServiceStub).ExpireSilence, api.ExpireSilenceRequest(silence_id=silence_id))],
             SILENCE_COLUMNS)
