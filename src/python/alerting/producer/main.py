"""alert-producer: publish alerts from flags, JSON lines, or as a load generator."""

from __future__ import annotations

import asyncio
import json
from typing import TextIO

import click

from alerting.common import telemetry
from alerting.common.settings import ProducerSettings
from alerting.common.validation import InvalidField
from alerting.producer.alerts import alert_from_json, build_alert
from alerting.producer.load import run_load
from alerting.producer.publisher import AlertPublisher


def settings_for_cli() -> ProducerSettings:
    settings = ProducerSettings()
    telemetry.setup_tracing("alert-producer", settings)
    return settings


@click.group()
def cli() -> None:
    """Publish alerts to Kafka `alerts.new`."""


@cli.command()
@click.option("--severity", help="LOW, MEDIUM, HIGH or CRITICAL.")
@click.option("--source")
@click.option("--name")
@click.option("--event-ts", help="ISO 8601; default now.")
@click.option("--alert-id", help="Default: a stable hash of severity, source, name and event time.")
@click.option("--context", "context_pairs", multiple=True, help="key=value, repeatable.")
@click.option("--file", "input_file", type=click.File("r"), help="JSON lines, one alert each; - for stdin.")
def send(
    severity: str | None,
    source: str | None,
    name: str | None,
    event_ts: str | None,
    alert_id: str | None,
    context_pairs: tuple[str, ...],
    input_file: TextIO | None,
) -> None:
    """Publish one alert from flags, or every alert of a JSON-lines file."""
    try:
        if input_file is not None:
            alerts = []
            for number, line in enumerate(input_file, start=1):
                if line.strip():
                    try:
                        alerts.append(alert_from_json(json.loads(line)))
                    except (InvalidField, json.JSONDecodeError) as error:
                        raise click.ClickException(f"line {number}: {error}") from error
        else:
            context = dict(pair.split("=", 1) for pair in context_pairs if "=" in pair)
            alerts = [build_alert(severity or "", source or "", name or "", event_ts, alert_id, context)]
    except InvalidField as error:
        raise click.ClickException(str(error)) from error

    async def publish() -> list[str]:
        async with AlertPublisher(settings_for_cli()) as publisher:
            return await publisher.publish(alerts)

    trace_ids = asyncio.run(publish())
    for alert, trace_id in zip(alerts, trace_ids, strict=True):
        click.echo(f"published {alert.alert_id} trace {trace_id}")


@cli.command()
@click.option("--count", default=10_000, show_default=True, help="Alerts to send.")
@click.option("--rate", default=1000.0, show_default=True, help="Target alerts per second.")
@click.option("--sources", default=50, show_default=True, help="Distinct sources (src-0 ...).")
@click.option("--names", default=50, show_default=True, help="Distinct names (name-0 ...).")
@click.option("--duplicates", default=0.0, show_default=True, help="Fraction re-sent with an earlier alert id.")
@click.option("--seed", default=1, show_default=True)
def load(count: int, rate: float, sources: int, names: int, duplicates: float, seed: int) -> None:
    """Send COUNT synthetic alerts at RATE per second, with a progress bar and a summary."""
    summary = asyncio.run(run_load(settings_for_cli(), count, rate, sources, names, duplicates, seed))
    click.echo(
        f"sent {summary.sent} alerts ({summary.duplicates} duplicates) in {summary.seconds:.2f} s: "
        f"{summary.rate:.0f} alerts/s (target {rate:.0f}), errors {summary.errors}"
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
