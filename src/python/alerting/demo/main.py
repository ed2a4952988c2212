"""The demo `deploy/platform up` ends with: a client and a TENANT key for it (made with the
admin key), two overlapping rules (made with the tenant key), a few alerts (one of them
twice, one of another source, a burst of one kind), followed through the running platform
to SENT as the tenant sees them: under the default delivery policy, as two digests. With a
local webhook-sink (deploy/platform's), one rule also names a webhook receiver, and its
signed request is shown beside the email."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid

from alerting.common import telemetry
from alerting.common.grpc_client import aio_channel
from alerting.common.settings import DemoSettings
from alerting.common.vocabulary import WILDCARD, severity_name
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.rules.receivers import receiver_of
from alerting.v1 import api_key_service_pb2 as keys_api
from alerting.v1 import (
    api_key_service_pb2_grpc,
    notification_policy_service_pb2_grpc,
    notification_service_pb2_grpc,
    receiver_service_pb2_grpc,
    rule_service_pb2_grpc,
)
from alerting.v1 import notification_policy_service_pb2 as policies_api
from alerting.v1 import notification_service_pb2 as notifications_api
from alerting.v1 import receiver_service_pb2 as receivers_api
from alerting.v1 import rule_service_pb2 as api


def say(line: str = "") -> None:
    print(line, flush=True)


async def demo(settings: DemoSettings, timeout: float = 60) -> int:
    tag = uuid.uuid4().hex[:6]
    # This run's own source: alerts of an earlier run's tenant (granted its own) never match this one's.
    db = f"db-{tag}"
    async with aio_channel(settings) as channel:  # the admin key: it makes tenants and their keys
        await asyncio.wait_for(channel.channel_ready(), 30)
        admin = rule_service_pb2_grpc.RuleServiceStub(channel)
        client = await admin.CreateClient(api.CreateClientRequest(name=f"demo-{tag}"))
        # Alerts have owners: the tenant's rules match only the sources an admin granted it.
        grant = await admin.CreateSourceGrant(api.CreateSourceGrantRequest(client_id=client.client_id, source=db))
        tenant = await api_key_service_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
            keys_api.CreateApiKeyRequest(role=keys_api.ROLE_TENANT, client_id=client.client_id, name="demo"))
    say(f"client   {client.client_id}  {client.name}  (made by admin key {client.updated_by})")
    say(f"grant    source {grant.source!r} to {client.name}: its rules match the alerts of {db} only")
    say(f"key      {tenant.api_key.key_id}  TENANT of {client.name}: the rules below are made with it")
    sink = os.environ.get("ALERTING_DEMO_WEBHOOK_SINK", "").rstrip("/")
    hook = f"demo-{tag}"
    async with aio_channel(settings, api_key=tenant.key) as channel:
        receiver_ids = []
        if sink:
            created = await receiver_service_pb2_grpc.ReceiverServiceStub(channel).CreateReceiver(
                receivers_api.CreateReceiverRequest(client_id=client.client_id, name=hook, url=f"{sink}/hooks/{hook}",
                                                    kind=receivers_api.RECEIVER_KIND_WEBHOOK))
            # Where the sink finds the secret to verify with, as a tenant's endpoint would keep it.
            secrets = os.environ["ALERTING_DEMO_WEBHOOK_SECRETS_DIR"]
            os.makedirs(secrets, mode=0o700, exist_ok=True)
            with open(os.open(os.path.join(secrets, hook), os.O_WRONLY | os.O_CREAT, 0o600), "w") as kept:
                kept.write(created.signing_secret)
            receiver_ids.append(created.receiver.receiver_id)
            say(f"receiver {created.receiver.receiver_id}  webhook {created.receiver.url}  (its signing secret,"
                " shown once, kept for the webhook-sink)")
        stub = rule_service_pb2_grpc.RuleServiceStub(channel)
        for severity, source, name, email, receivers in (("HIGH", db, WILDCARD, "oncall@demo.example", []),
                                                         (WILDCARD, db, "disk_full", "dba@demo.example", receiver_ids)):
            rule = await stub.CreateRule(api.CreateRuleRequest(
                client_id=client.client_id, severity=severity, source=source, name=name, emails=[email],
                receiver_ids=receivers))
            say(f"rule     {rule.rule_id}  severity={severity} source={source} name={name} -> {email}"
                + (" and the webhook" if receivers else ""))
    await asyncio.sleep(1.0)  # the rules travel outbox → rule.changed → evaluator

    async with aio_channel(settings, api_key=tenant.key) as channel:
        policies = notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(channel)
        policy = await policies.GetNotificationPolicy(policies_api.GetNotificationPolicyRequest(
            client_id=client.client_id))
    say(f"policy   {'the default' if policy.is_default else 'its own'}: group by "
        f"{', '.join(policy.group_by) or 'nothing'} (one group per set of recipients), first email "
        f"{policy.group_wait_seconds} s after a group's first notification, then at most one every "
        f"{policy.group_interval_seconds} s")

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    both_rules = build_alert("HIGH", db, "disk_full", event_ts=now, context={"host": "db-1", "demo": tag})
    one_rule = build_alert("LOW", db, "disk_full", event_ts=now, context={"host": "db-2", "demo": tag})
    no_rule = build_alert("HIGH", "web", "latency", event_ts=now, context={"demo": tag})
    # A burst: the same check failing again and again (each a new alert: a later event time).
    burst = [build_alert("HIGH", db, "disk_full", context={"host": "db-1", "demo": tag},
                         event_ts=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - n)))
             for n in range(1, 5)]
    alerts = [both_rules, one_rule, no_rule, both_rules, *burst]
    async with AlertPublisher(settings) as publisher:
        trace_ids = await publisher.publish(alerts)
    for alert, trace_id in zip(alerts, trace_ids, strict=True):
        severity = severity_name(alert.severity)
        say(f"alert    {alert.alert_id}  {alert.source}/{alert.name} {severity}  trace {trace_id}")
    say("         (the first alert is published twice; web/latency matches no rule, and web is not granted;")
    say("         the HIGH disk_full alerts go to both addresses, the LOW one to the dba alone: two groups,")
    say("         so two digests once the policy's group_wait has passed)")
    expected = 2 + len(burst)

    # What the tenant sees of its notifications, through the API with its own key.
    async with aio_channel(settings, api_key=tenant.key) as channel:
        notifications = notification_service_pb2_grpc.NotificationServiceStub(channel)
        deadline = time.monotonic() + timeout + policy.group_wait_seconds
        while True:
            listed = (await notifications.ListNotifications(
                notifications_api.ListNotificationsRequest(client_id=client.client_id))).notifications
            if len(listed) == expected and all(n.status == notifications_api.NOTIFICATION_STATUS_SENT
                                               for n in listed):
                break
            if time.monotonic() > deadline:
                say(f"NOT DONE after {timeout:.0f} s: {[str(n) for n in listed]}")
                return 1
            await asyncio.sleep(0.2)
    mailpit = os.environ.get("ALERTING_MAILPIT_UI", "").rstrip("/")
    emails: dict[str, list[notifications_api.Notification]] = {}
    # In a digest's order (the first one's trace holds the email's send).
    for notification in sorted(listed, key=lambda n: (n.created_at.ToDatetime(), n.notification_id)):
        emails.setdefault(notification.delivered_in, []).append(notification)
    for delivered_in, delivered in emails.items():
        kind = "digest" if delivered[0].digest_id else "email"
        # A receiver's endpoint (receiver:<id>) shown as the webhook's name.
        to = [f"webhook {hook}" if receiver_of(recipient) else recipient for recipient in delivered[0].emails]
        say(f"{kind:<8} {delivered_in}  {len(delivered)} notification{'s' if len(delivered) > 1 else ''}  "
            f"to {', '.join(to)}")
        for notification in delivered:
            say(f"           notified {notification.notification_id}  alert {notification.alert_id[:12]}…  SENT  "
                f"rules={len(notification.rule_ids)}  trace {notification.trace_id or '-'}")
        if delivered[0].trace_id and (link := trace_link(delivered[0].trace_id)):
            say(f"           {link}")
        if mailpit:
            say(f"           email in Mailpit: {mail_link(mailpit, delivered[0].alert_id)}")
    if sink:
        with urllib.request.urlopen(f"{sink}/deliveries", timeout=5) as response:
            received = [item for item in json.load(response) if item["receiver"] == f"hooks/{hook}"]
        for item in received:
            say(f"webhook  {item['idempotency_key']}  {item['body']['kind']} of {len(item['body']['notifications'])}"
                f"  signature {'verified' if item['verified'] else 'REFUSED: ' + str(item['refused'])}"
                f"  ({sink}/)")
        if not received or not all(item["verified"] for item in received):
            say("NOT DONE: the webhook-sink has no verified request of this demo's webhook")
            return 1
    say(f"demo done: {expected} notifications SENT in {len(emails)} emails for {len(alerts)} alerts published "
        "(one duplicate, one unmatched); " + (f"mail in Mailpit: {mailpit}/" if mailpit else "mail in .local/mail/"))
    if os.environ.get("ALERTING_ZIPKIN_UI"):
        say("         (the services send their spans in batches: a trace is whole a few seconds after this)")
    return 0


def trace_link(trace_id: str) -> str:
    """Where to look at a trace: in Zipkin's UI (deploy/platform sets ALERTING_ZIPKIN_UI when
    the services' spans go to it) or Jaeger's (Docker Compose sets ALERTING_JAEGER_UI)."""
    zipkin = os.environ.get("ALERTING_ZIPKIN_UI", "").rstrip("/")
    jaeger = os.environ.get("ALERTING_JAEGER_UI", "").rstrip("/")
    if zipkin:
        return f"trace in Zipkin: {zipkin}/traces/{trace_id}"
    if jaeger:
        return f"trace in Jaeger: {jaeger}/trace/{trace_id}"
    return ""


def mail_link(mailpit: str, alert_id: str) -> str:
    """The page of the alert's email in Mailpit's UI, found through Mailpit's search API (the
    body names the alert id); a search for it when Mailpit does not answer or has no such email."""
    query = urllib.parse.quote(f'"{alert_id}"')
    try:
        with urllib.request.urlopen(f"{mailpit}/api/v1/search?query={query}", timeout=5) as response:
            found = json.load(response)["messages"]
    except (OSError, ValueError, KeyError):
        found = []
    return f"{mailpit}/view/{found[0]['ID']}" if found else f"{mailpit}/search?q={query}"


def main() -> None:
    settings = DemoSettings()
    telemetry.setup_tracing("demo", settings)
    sys.exit(asyncio.run(demo(settings)))


if __name__ == "__main__":
    main()
