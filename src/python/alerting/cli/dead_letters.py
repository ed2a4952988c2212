"""alertctl dlq: the records a worker could never process, listed and replayed."""

from __future__ import annotations

import click

from alerting.cli.shared import Context, pass_context
from alerting.common import topics
from alerting.v1 import dead_letter_service_pb2 as api
from alerting.v1.dead_letter_service_pb2_grpc import DeadLetterServiceStub

# The reason last: it is free text, and the columns before it stay aligned.
DEAD_LETTER_COLUMNS = ("offset", "timestamp", "source", "key", "value_size", "replay_of", "reason")
REPLAY_COLUMNS = ("topic", "replayed", "offsets")
DLQ_HELP = f"""Dead letters: list them, replay them.

Dead letters are the records a worker could never process; it keeps them on
<TOPIC>.dlq with the reason.

TOPIC is the input topic they came from, without any topic prefix: one of
{", ".join(topics.INPUT_TOPICS)}.
"""


@click.group(help=DLQ_HELP)
def dlq() -> None:
    pass


@dlq.command("list")
@click.argument("topic")
@click.option("--from", "start_offset", type=click.IntRange(min=0), default=0, show_default=True, metavar="OFFSET",
              help="The first dead-letter offset to list (the oldest still kept, if that is later).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, metavar="N",
              help="List at most N dead letters (the server allows 1000).")
@pass_context
def dlq_list(ctx: Context, topic: str, start_offset: int, limit: int) -> None:
    """List a topic's dead letters.

    Lists TOPIC's dead letters in offset order: each one's offset (what `dlq replay`
    takes), when it was dead-lettered, the source record (topic/partition/offset), its
    key, its value's size in bytes, the dead letter it replayed (if it is a replay that
    was rejected again), and why it was rejected. When there are more, stderr says where
    to go on.
    """
    request = api.ListDeadLettersRequest(topic=topic, start_offset=start_offset, max_count=limit)
    page = ctx.call(ctx.stub(DeadLetterServiceStub).ListDeadLetters, request)
    ctx.show(page.dead_letters, DEAD_LETTER_COLUMNS)
    if page.next_offset < page.end_offset:
        click.echo(f"(more: --from {page.next_offset}; the last offset is {page.end_offset - 1})", err=True)


@dlq.command("replay")
@click.argument("topic")
@click.argument("offsets", nargs=-1, required=True, type=click.IntRange(min=0), metavar="OFFSET...")
@pass_context
def dlq_replay(ctx: Context, topic: str, offsets: tuple[int, ...]) -> None:
    """Publish dead letters again to their topic.

    Publishes the dead letters at OFFSET... again to TOPIC, with their original key,
    value and headers (without the dlq.* ones), plus dlq.replay_of naming the dead letter.

    Fix the cause first: a record that is still invalid is dead-lettered again. Each
    offset is published once per command (an offset given twice, once); running the
    command again publishes it again. An offset that is not there is NOT_FOUND (exit 4)
    and then nothing is published.
    """
    request = api.ReplayDeadLettersRequest(topic=topic, offsets=list(offsets))
    replayed = ctx.call(ctx.stub(DeadLetterServiceStub).ReplayDeadLetters, request)
    if ctx.output_json:
        ctx.show([replayed], REPLAY_COLUMNS)
        return
    offsets_text = ", ".join(str(offset) for offset in replayed.offsets)
    click.echo(f"replayed {replayed.replayed} to {replayed.topic}: dead-letter offsets {offsets_text}")
