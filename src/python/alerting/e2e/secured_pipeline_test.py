"""The whole flow with every service connected to the broker's SASL_SSL listener as its own
principal, under the local stack's ACLs (granted again on this test's topics and groups):
what each principal is allowed is all its service needs, dead letters and their replay,
the rule follower and the aggregator's sweeper included."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import alerting.aggregator.main
import alerting.evaluator.main
import alerting.rule_updater.main
import alerting.sender.main
from alerting.common import topics
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.kafka_security import as_principal, platform_acls_granted, sasl_listener
from alerting.testsupport.services import fetch, free_port, immediate_sender, rule_service, running, send, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import dead_letter_service_pb2 as dead_letter_api
from alerting.v1 import dead_letter_service_pb2_grpc, rule_service_pb2, rule_service_pb2_grpc


async def test_every_service_works_as_its_own_principal(
    stack_settings: StackSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listener = await sasl_listener(stack_settings)
    smtp_port = free_port()
    server, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20})

    def principal(name: str) -> StackSettings:
        return as_principal(settings, listener, name)


    async def sent() -> bool:
        return [row["status"] for row in await fetch(settings, "SELECT status FROM notifications")] == ["SENT"]

    caplog.set_level(logging.WARNING)
    try:
        async with (
            platform_acls_granted(settings),
            rule_service(principal("rule-service")) as service,
            service.channel() as channel,
        ):
            rules = rule_service_pb2_grpc.RuleServiceStub(channel)
            replays = dead_letter_service_pb2_grpc.DeadLetterServiceStub(channel)
            client = await rules.CreateClient(rule_service_pb2.CreateClientRequest(name="acme"))
            await rules.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(client_id=client.client_id,
                                                                                    source="db"))
            await rules.CreateRule(rule_service_pb2.CreateRuleRequest(
                client_id=client.client_id, severity="HIGH", source="db", name="*", emails=["oncall@acme.io"]))
            aggregator = principal("aggregator").model_copy(update={"sweep_interval_seconds": 0.2})
            sender = immediate_sender(principal("sender"))
            async with (
                running(alerting.rule_updater.main.run, principal("rule-updater")),
                running(alerting.evaluator.main.run, principal("evaluator")),
                running(alerting.aggregator.main.run, aggregator),
                running(alerting.sender.main.run, sender),
            ):
                async with AlertPublisher(principal("producer")) as publisher:
                    await publisher.publish([build_alert("HIGH", "db", "disk_full", event_ts="2026-11-24T10:00:00Z")])
                await send(principal("producer"), topics.ALERTS_NEW, [b"not an AlertNew"], keys=[b"poison"])
                await wait_until(sent, 60, "the notification SENT")

                async def dead_letters(count: int) -> bool:
                    listed = await replays.ListDeadLetters(dead_letter_api.ListDeadLettersRequest(
                        topic=topics.ALERTS_NEW))
                    return len(listed.dead_letters) == count

                await wait_until(lambda: dead_letters(1), 30, "the evaluator's dead letter")
                # The rule-service replays it to alerts.new, and the evaluator dead-letters it again.
                await replays.ReplayDeadLetters(dead_letter_api.ReplayDeadLettersRequest(
                    topic=topics.ALERTS_NEW, offsets=[0]))
                await wait_until(lambda: dead_letters(2), 30, "the replayed record dead-lettered again")
    finally:
        server.close()
        await server.wait_closed()
    assert [mail["To"] for mail in mailbox.read_all(tmp_path / "mail")] == ["oncall@acme.io"]
    refusals = [line for line in caplog.text.splitlines() if "AuthorizationFailed" in line or "not authorized" in line]
    assert refusals == []
