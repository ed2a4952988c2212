"""Receivers through the whole platform (rule-service → rule-updater → evaluator →
aggregator → sender → real HTTP servers and a real SMTP server): a rule's own addresses,
email, webhook and Slack-format receivers side by side, poison endpoints among them. Every good delivery is
made (webhooks signed, their Idempotency-Key the notification's or the digest's id), every
poison one FAILED with its answer, a 503 tried again until it takes, a digest sent to a
webhook as one request listing its notifications; nothing stalls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from pathlib import Path

from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.http_endpoints import Answer, Received, serving
from alerting.testsupport.services import (
    RECEIVERS_SETTINGS,
    fetch,
    free_port,
    immediate_sender,
    rule_service,
    running_pipeline,
    wait_until,
)
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    notification_policy_service_pb2,
    notification_policy_service_pb2_grpc,
    receiver_service_pb2,
    receiver_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
)

WEBHOOK, SLACK, EMAIL = (receiver_service_pb2.RECEIVER_KIND_WEBHOOK, receiver_service_pb2.RECEIVER_KIND_SLACK,
                         receiver_service_pb2.RECEIVER_KIND_EMAIL)


def verifies(secret: str, request: Received) -> bool:
    """What a tenant's receiver checks, with the standard library only."""
    timestamp = request.headers["x-alerting-timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers["x-alerting-signature"], "v1=" + expected)


async def test_email_webhook_and_slack_receivers_with_poison_endpoints_among_them(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail",
                               rcpt_replies={"left@poisoned.io": "550 5.1.1 no such user"})
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20, **RECEIVERS_SETTINGS})
    sender = immediate_sender(settings, delivery_retry_initial_seconds=0.5, delivery_retry_max_seconds=1.0,
                              retry_poll_seconds=0.2, digest_poll_seconds=0.2, default_group_interval_seconds=60)
    scripts = {"/good": [Answer(204)], "/gone": [Answer(410, body=b"hook deleted")],
               "/flaky": [Answer(503), Answer(503), Answer(200)], "/chat": [Answer(200, body=b"ok")],
               "/digests": [Answer(200)]}
    try:
        with serving(scripts) as endpoints:
            async with rule_service(settings) as service, service.channel() as channel:
                rules = rule_service_pb2_grpc.RuleServiceStub(channel)
                receivers = receiver_service_pb2_grpc.ReceiverServiceStub(channel)

                async def tenant(name: str,
                                 kinds: dict[str, receiver_service_pb2.ReceiverKind.ValueType | list[str]],
                                 emails: list[str]
                                 ) -> tuple[str, dict[str, receiver_service_pb2.CreateReceiverResponse]]:
                    """A client with a rule naming its receivers: a webhook or Slack one by
                    its path on the HTTP server, an email one by its name and addresses."""
                    client_id = (await rules.CreateClient(rule_service_pb2.CreateClientRequest(name=name))).client_id
                    await rules.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
                        client_id=client_id, source=f"{name}-app"))
                    made = {path: await receivers.CreateReceiver(
                        receiver_service_pb2.CreateReceiverRequest(
                            client_id=client_id, name=path, kind=EMAIL, addresses=kind) if isinstance(kind, list)
                        else receiver_service_pb2.CreateReceiverRequest(
                            client_id=client_id, name=path.strip("/"), kind=kind, url=endpoints.url(path)))
                        for path, kind in kinds.items()}
                    await rules.CreateRule(rule_service_pb2.CreateRuleRequest(
                        client_id=client_id, severity="*", source=f"{name}-app", name="*", emails=emails,
                        receiver_ids=[response.receiver.receiver_id for response in made.values()]))
                    return client_id, made

                mixed, mixed_receivers = await tenant(
                    "mixed", {"/good": WEBHOOK, "/chat": SLACK, "team": ["a@team.io", "b@team.io"]}, ["ops@mixed.io"])
                poisoned, poisoned_receivers = await tenant(
                    "poisoned", {"/gone": WEBHOOK, "left": ["left@poisoned.io"]}, ["ops@poisoned.io"])
                flaky, _ = await tenant("flaky", {"/flaky": WEBHOOK}, [])
                grouped, grouped_receivers = await tenant("grouped", {"/digests": WEBHOOK}, [])
                await notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(
                    channel).SetNotificationPolicy(notification_policy_service_pb2.SetNotificationPolicyRequest(
                        client_id=grouped, group_wait_seconds=1, group_interval_seconds=60))

                alerts = {mixed: [build_alert("HIGH", "mixed-app", f"check-{n}") for n in range(5)],
                          poisoned: [build_alert("LOW", "poisoned-app", f"check-{n}") for n in range(3)],
                          flaky: [build_alert("CRITICAL", "flaky-app", "check")],
                          grouped: [build_alert("MEDIUM", "grouped-app", f"check-{n}") for n in range(4)]}
                async with running_pipeline(settings, sender), AlertPublisher(settings) as publisher:
                    await asyncio.sleep(1)  # the rules and grants travel outbox → rule.changed → evaluator
                    await publisher.publish([alert for batch in alerts.values() for alert in batch])
                    expected = sum(len(batch) for batch in alerts.values())

                    async def all_decided() -> bool:
                        [row] = await fetch(settings, "SELECT count(*) AS n FROM notifications"
                                                      " WHERE status IN ('SENT', 'FAILED')")
                        return row["n"] == expected

                    await wait_until(all_decided, 60, f"{expected} notifications SENT or FAILED")
                    await asyncio.sleep(1)  # anything unexpected lands now
                    rows = await fetch(settings, "SELECT n.client_id::text, n.notification_id::text, n.status,"
                                                 " n.digest_id::text, r.email, r.status AS outcome, r.response"
                                                 " FROM notifications n LEFT JOIN notification_recipients r USING"
                                                 " (notification_id)")
                    digest_rows = await fetch(settings, "SELECT digest_id::text, client_id::text, status FROM digests")
    finally:
        sink.close()

    def outcomes(client_id: str) -> Counter[tuple[str, str, str]]:
        return Counter((row["status"], row["email"], row["outcome"]) for row in rows if row["client_id"] == client_id)

    def endpoint(responses: dict[str, receiver_service_pb2.CreateReceiverResponse], path: str) -> str:
        return f"receiver:{responses[path].receiver.receiver_id}"

    # The rule's address, an email receiver, a webhook and Slack: each notification delivered
    # to all four, once each; the email receiver's addresses get one email together.
    assert outcomes(mixed) == Counter({("SENT", "ops@mixed.io", "SENT"): 5,
                                       ("SENT", endpoint(mixed_receivers, "/good"), "SENT"): 5,
                                       ("SENT", endpoint(mixed_receivers, "/chat"), "SENT"): 5,
                                       ("SENT", endpoint(mixed_receivers, "team"), "SENT"): 5})
    mixed_ids = {row["notification_id"] for row in rows if row["client_id"] == mixed}
    hooks = endpoints.requests_to("/good")
    assert sorted(request.headers["idempotency-key"] for request in hooks) == sorted(mixed_ids)
    assert all(verifies(mixed_receivers["/good"].signing_secret, request) for request in hooks)
    assert {json.loads(request.body)["notifications"][0]["notification_id"] for request in hooks} == mixed_ids
    chats = [json.loads(request.body) for request in endpoints.requests_to("/chat")]
    assert len(chats) == 5 and {chat["text"] for chat in chats} == {f"[HIGH] mixed-app/check-{n}" for n in range(5)}
    assert all("x-alerting-signature" not in request.headers for request in endpoints.requests_to("/chat"))
    mail = Counter(message["To"] for message in mailbox.read_all(tmp_path / "mail"))
    assert mail == Counter({"ops@mixed.io": 5, "a@team.io, b@team.io": 5, "ops@poisoned.io": 3})

    # A poison webhook and an email receiver whose only address is refused FAIL on their own
    # with their answers; the email beside them is SENT.
    assert outcomes(poisoned) == Counter({("SENT", "ops@poisoned.io", "SENT"): 3,
                                          ("SENT", endpoint(poisoned_receivers, "/gone"), "FAILED"): 3,
                                          ("SENT", endpoint(poisoned_receivers, "left"), "FAILED"): 3})
    assert {row["response"] for row in rows if row["email"] == endpoint(poisoned_receivers, "/gone")} == {
        "HTTP 410: hook deleted"}
    assert {row["response"] for row in rows if row["email"] == endpoint(poisoned_receivers, "left")} == {
        "left@poisoned.io: 550 5.1.1 no such user"}
    assert len(endpoints.requests_to("/gone")) == 3

    # 503, 503, then 200: tried again until it took.
    assert [row["outcome"] for row in rows if row["client_id"] == flaky] == ["SENT"]
    assert len(endpoints.requests_to("/flaky")) == 3
    assert len({request.headers["idempotency-key"] for request in endpoints.requests_to("/flaky")}) == 1

    # A digest goes to a webhook as one request listing its notifications.
    [digest] = [row for row in digest_rows if row["client_id"] == grouped]
    [posted] = endpoints.requests_to("/digests")
    document = json.loads(posted.body)
    assert (posted.headers["idempotency-key"], document["kind"], document["id"]) == (
        digest["digest_id"], "digest", digest["digest_id"])
    assert verifies(grouped_receivers["/digests"].signing_secret, posted)
    assert sorted(item["notification_id"] for item in document["notifications"]) == sorted(
        row["notification_id"] for row in rows if row["client_id"] == grouped)
    assert {row["digest_id"] for row in rows if row["client_id"] == grouped} == {digest["digest_id"]}
