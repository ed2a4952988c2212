"""The demo `deploy/platform up` ends with: a client, two overlapping rules, three alerts
(one of them twice), followed through the running platform to SENT."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

import asyncpg
import grpc

from alerting.common import telemetry
from alerting.common.settings import Settings
from alerting.common.vocabulary import WILDCARD, severity_name
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.v1 import rule_service_pb2 as api
from alerting.v1 import rule_service_pb2_grpc


def say(line: str = "") -> None:
    print(line, flush=True)


async def demo(settings: Settings, timeout: float = 60) -> int:
    tag = uuid.uuid4().hex[:6]
    async with grpc.aio.insecure_channel(settings.rule_service_address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        client = await stub.CreateClient(api.CreateClientRequest(name=f"demo-{tag}"))
        say(f"client   {client.client_id}  {client.name}")
        for severity, source, name, email in (("HIGH", "db", WILDCARD, "oncall@demo.example"),
                                              (WILDCARD, "db", "disk_full", "dba@demo.example")):
            rule = await stub.CreateRule(api.CreateRuleRequest(
                client_id=client.client_id, severity=severity, source=source, name=name, emails=[email]))
            say(f"rule     {rule.rule_id}  severity={severity} source={source} name={name} -> {email}")
    await asyncio.sleep(1.0)  # the rules travel outbox → rule.changed → evaluator

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    both_rules = build_alert("HIGH", "db", "disk_full", event_ts=now, context={"host": "db-1", "demo": tag})
    one_rule = build_alert("LOW", "db", "disk_full", event_ts=now, context={"host": "db-2", "demo": tag})
    no_rule = build_alert("HIGH", "web", "latency", event_ts=now, context={"demo": tag})
    alerts = [both_rules, one_rule, no_rule, both_rules]
    async with AlertPublisher(settings) as publisher:
        trace_ids = await publisher.publish(alerts)
    for alert, trace_id in zip(alerts, trace_ids, strict=True):
        severity = severity_name(alert.severity)
        say(f"alert    {alert.alert_id}  {alert.source}/{alert.name} {severity}  trace {trace_id}")
    say("         (the first alert is published twice; web/latency matches no rule)")

    connection = await asyncpg.connect(settings.database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await connection.fetch(
                "SELECT notification_id::text, alert_id, status, cardinality(rule_ids) AS rules, emails, trace_context"
                " FROM notifications WHERE client_id = $1 ORDER BY created_at", uuid.UUID(client.client_id))
            if len(rows) == 2 and all(row["status"] == "SENT" for row in rows):
                break
            if time.monotonic() > deadline:
                say(f"NOT DONE after {timeout:.0f} s: {[dict(row) for row in rows]}")
                return 1
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    for row in rows:
        trace_id = row["trace_context"].split("-")[1] if row["trace_context"] else "-"
        say(f"notified {row['notification_id']}  alert {row['alert_id'][:12]}…  {row['status']}  "
            f"rules={row['rules']}  to {', '.join(row['emails'])}  trace {trace_id}")
        if trace_id != "-" and (link := trace_link(trace_id)):
            say(f"         {link}")
    mailpit = os.environ.get("ALERTING_MAILPIT_UI", "").rstrip("/")
    say("demo done: 2 notifications SENT for 4 alerts published (one duplicate, one unmatched); "
        + (f"mail in Mailpit: {mailpit}/" if mailpit else "mail in .local/mail/"))
    return 0


def trace_link(trace_id: str) -> str:
    """Where to look at a trace, when the services export to Jaeger: deploy/platform sets
    ALERTING_JAEGER_UI when Jaeger serves its UI, and ALERTING_JAEGER_API whenever traces go to it."""
    ui = os.environ.get("ALERTING_JAEGER_UI", "").rstrip("/")
    api = os.environ.get("ALERTING_JAEGER_API", "").rstrip("/")
    if ui:
        return f"trace in Jaeger: {ui}/trace/{trace_id}"
    if api:
        return f"trace in Jaeger's API (this Jaeger has no UI): {api}/traces/{trace_id}"
    return ""


def main() -> None:
    settings = Settings()
    telemetry.setup_tracing("demo", settings)
    sys.exit(asyncio.run(demo(settings)))


if __name__ == "__main__":
    main()
