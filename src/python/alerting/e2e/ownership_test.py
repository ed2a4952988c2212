"""Alert ownership, black-box through the whole platform (rule-service over TLS with real
keys → rule-updater → evaluator → aggregator → sender → SMTP): a tenant whose rules match
every alert receives only the alerts of the sources an admin granted it, never another
tenant's, and a revoked grant stops its alerts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alerting.common.vocabulary import SEVERITIES, WILDCARD
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.services import fetch, free_port, rule_service, running_pipeline, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    notification_service_pb2,
    notification_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
)


async def notified(settings: StackSettings) -> set[tuple[str, str, str]]:
    """(client_id, alert_id, status) of every notification."""
    rows = await fetch(settings, "SELECT client_id::text, alert_id, status FROM notifications")
    return {(row["client_id"], row["alert_id"], row["status"]) for row in rows}


async def test_a_tenant_with_rules_for_every_alert_receives_only_its_granted_sources(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20})
    try:
        async with rule_service(settings) as service, service.channel() as admin_channel:
            admin = rule_service_pb2_grpc.RuleServiceStub(admin_channel)
            keys = api_key_service_pb2_grpc.ApiKeyServiceStub(admin_channel)
            nosy = await admin.CreateClient(rule_service_pb2.CreateClientRequest(name="nosy"))
            owner = await admin.CreateClient(rule_service_pb2.CreateClientRequest(name="owner"))
            nosy_key, owner_key = [(await keys.CreateApiKey(api_key_service_pb2.CreateApiKeyRequest(
                role=api_key_service_pb2.ROLE_TENANT, client_id=client.client_id))).key for client in (nosy, owner)]
            # What only an admin does: each tenant is granted its own sources.
            await admin.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                client_id=nosy.client_id, source="nosy-app"))
            await admin.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                client_id=owner.client_id, source="payments.", prefix=True))
            # The tenant asks for everything, with its own key: each severity, any source, any name.
            async with service.channel(api_key=nosy_key) as channel:
                tenant = rule_service_pb2_grpc.RuleServiceStub(channel)
                for severity in SEVERITIES:
                    await tenant.CreateRule(rule_service_pb2.CreateRuleRequest(
                        client_id=nosy.client_id, severity=severity, source=WILDCARD, name=WILDCARD,
                        emails=["spy@nosy.io"]))
                # ...and names the other tenant's source outright: that matches nothing either.
                await tenant.CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=nosy.client_id, severity=WILDCARD, source="payments.db", name=WILDCARD,
                    emails=["spy@nosy.io"]))
            async with service.channel(api_key=owner_key) as channel:
                await rule_service_pb2_grpc.RuleServiceStub(channel).CreateRule(rule_service_pb2.CreateRuleRequest(
                    client_id=owner.client_id, severity=WILDCARD, source="payments.db", name=WILDCARD,
                    emails=["oncall@owner.io"]))

            async with running_pipeline(settings), AlertPublisher(settings) as publisher:
                own = build_alert("HIGH", "nosy-app", "errors", event_ts="2026-11-24T10:00:00Z")
                others = [build_alert(severity, "payments.db", "card_data", event_ts="2026-11-24T10:00:00Z",
                                      context={"card": "4111-1111"}) for severity in SEVERITIES]
                unowned = build_alert("CRITICAL", "nobody", "disk_full", event_ts="2026-11-24T10:00:00Z")
                await publisher.publish([own, *others, unowned])
                expected = {(nosy.client_id, own.alert_id, "SENT")} | {
                    (owner.client_id, alert.alert_id, "SENT") for alert in others}

                async def all_sent() -> bool:
                    return expected <= await notified(settings)

                await wait_until(all_sent, 60, "the granted alerts SENT")
                await asyncio.sleep(1.0)  # time for anything else the evaluator might have matched
                assert await notified(settings) == expected

                # Revoked: the tenant's next alert of that source reaches no one; a marker alert
                # published after it proves the evaluator has handled it.
                await admin.DeleteSourceGrant(rule_service_pb2.DeleteSourceGrantRequest(
                    client_id=nosy.client_id, source="nosy-app"))
                await asyncio.sleep(1.0)  # the revocation travels outbox → rule.changed → evaluator
                after_revoke = build_alert("HIGH", "nosy-app", "errors", event_ts="2026-11-24T10:05:00Z")
                marker = build_alert("LOW", "payments.db", "marker", event_ts="2026-11-24T10:05:00Z")
                await publisher.publish([after_revoke])
                await publisher.publish([marker])
                await wait_until(lambda: _has(settings, marker.alert_id), 60, "the marker notification")
                assert not await _has(settings, after_revoke.alert_id)

            # What each tenant sees of it through the API with its own key.
            async with service.channel(api_key=nosy_key) as channel:
                seen = await notification_service_pb2_grpc.NotificationServiceStub(channel).ListNotifications(
                    notification_service_pb2.ListNotificationsRequest())
        assert [(n.client_id, n.alert_id) for n in seen.notifications] == [(nosy.client_id, own.alert_id)]
        mails = mailbox.read_all(tmp_path / "mail")
        assert sorted((mail["To"], mail["Subject"]) for mail in mails if mail["To"] == "spy@nosy.io") == [
            ("spy@nosy.io", "[HIGH] nosy-app: errors")]
        assert not any("card_data" in mail["Subject"] for mail in mails if mail["To"] != "oncall@owner.io")
    finally:
        sink.close()


async def _has(settings: StackSettings, alert_id: str) -> bool:
    return bool(await fetch(settings, "SELECT 1 FROM notifications WHERE alert_id = $1", alert_id))
