"""Delivery policies through the whole platform (rule-service with its policy and silence
APIs → rule-updater → evaluator → aggregator → sender → a real SMTP server): a burst of one
tenant's alerts arrives as digests, another tenant's groups split by source, a third
tenant's hourly limit holds its overflow back in a digest (never dropping it), and a
silence mutes what it matches. Every notification is recorded once; each one SENT was in
exactly one email, which lists it; the mailbox holds exactly the emails recorded."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration

from alerting.common.settings import SenderSettings
from alerting.producer.alerts import build_alert
from alerting.producer.publisher import AlertPublisher
from alerting.smtp_sink import mailbox
from alerting.smtp_sink.main import start_sink
from alerting.testsupport.services import fetch, free_port, rule_service, running_pipeline, wait_until
from alerting.testsupport.stack import StackSettings
from alerting.v1 import (
    notification_policy_service_pb2,
    notification_policy_service_pb2_grpc,
    rule_service_pb2,
    rule_service_pb2_grpc,
    silence_service_pb2,
    silence_service_pb2_grpc,
)

GROUP_WAIT = 2
GROUP_INTERVAL = 6
LIMIT = 3
ALERT_ID = re.compile(r"  alert (\S+)  rules ")


async def tenant(stub: rule_service_pb2_grpc.RuleServiceAsyncStub, name: str, source: str, prefix: bool = False
                 ) -> str:
    client = await stub.CreateClient(rule_service_pb2.CreateClientRequest(name=name))
    await stub.CreateSourceGrant(rule_service_pb2.CreateSourceGrantRequest(
        client_id=client.client_id, source=source, prefix=prefix))
    # A rule of a source granted by prefix names none: its client's grants bound it.
    await stub.CreateRule(rule_service_pb2.CreateRuleRequest(
        client_id=client.client_id, severity="LOW" if prefix else "*", source="*" if prefix else source, name="*",
        emails=[f"oncall@{name}.io"]))
    return client.client_id


async def test_digests_groups_the_hourly_limit_and_silences_through_the_pipeline(
    stack_settings: StackSettings, tmp_path: Path
) -> None:
    smtp_port = free_port()
    sink, _ = await start_sink("127.0.0.1", smtp_port, tmp_path / "mail")
    settings = stack_settings.model_copy(update={"smtp_port": smtp_port, "batch_timeout_ms": 20})
    sender = SenderSettings(**{**settings.model_dump(), "default_group_wait_seconds": GROUP_WAIT,
                               "default_group_interval_seconds": GROUP_INTERVAL, "digest_poll_seconds": 0.2})
    try:
        async with rule_service(settings) as service, service.channel() as channel:
            rules = rule_service_pb2_grpc.RuleServiceStub(channel)
            policies = notification_policy_service_pb2_grpc.NotificationPolicyServiceStub(channel)
            silences = silence_service_pb2_grpc.SilenceServiceStub(channel)
            storm = await tenant(rules, "storm", "storm-app")
            split = await tenant(rules, "split", "split-", prefix=True)
            limited = await tenant(rules, "limited", "limited-app")
            muted = await tenant(rules, "muted", "muted-app")
            await policies.SetNotificationPolicy(notification_policy_service_pb2.SetNotificationPolicyRequest(
                client_id=split, group_by=["source"], group_wait_seconds=GROUP_WAIT,
                group_interval_seconds=GROUP_INTERVAL))
            await policies.SetNotificationPolicy(notification_policy_service_pb2.SetNotificationPolicyRequest(
                client_id=limited, group_wait_seconds=0, group_interval_seconds=GROUP_INTERVAL,
                max_emails_per_hour=LIMIT))
            silence = await silences.CreateSilence(silence_service_pb2.CreateSilenceRequest(
                client_id=muted, severity="*", source="*", name="noisy", duration=Duration(seconds=600),
                comment="a known flapping check"))

            alerts = {
                storm: [build_alert("HIGH", "storm-app", f"check-{n}") for n in range(150)],
                split: [build_alert("LOW", f"split-{side}", f"check-{n}") for side in "ab" for n in range(10)],
                limited: [build_alert("HIGH", "limited-app", f"check-{n}") for n in range(10)],
                muted: [build_alert("HIGH", "muted-app", name) for name in ("noisy", "noisy", "disk")],
            }
            async with running_pipeline(settings, sender), AlertPublisher(settings) as publisher:
                await asyncio.sleep(1)  # the rules and grants travel outbox → rule.changed → evaluator
                await publisher.publish([alert for batch in alerts.values() for alert in batch])
                # What the limit lets through goes at once; the rest waits for the hour.
                expected_final = len(alerts[storm]) + len(alerts[split]) + LIMIT + len(alerts[muted])

                async def all_decided() -> bool:
                    [row] = await fetch(settings, "SELECT count(*) AS n FROM notifications"
                                                  " WHERE status IN ('SENT', 'SILENCED')")
                    return row["n"] == expected_final

                await wait_until(all_decided, 60, f"{expected_final} notifications SENT or SILENCED")
                await asyncio.sleep(1)  # anything unexpected lands now
                rows = await fetch(settings, "SELECT client_id::text, alert_id, status, digest_id::text,"
                                             " silenced_by::text, notification_id::text FROM notifications")
                digests = {row["digest_id"]: row for row in await fetch(
                    settings, "SELECT digest_id::text, client_id::text, status, next_attempt_at, group_key"
                              " FROM digests")}
    finally:
        sink.close()

    by_client = {client: [row for row in rows if row["client_id"] == client] for client in alerts}
    assert {client: len(found) for client, found in by_client.items()} == {
        client: len(sent) for client, sent in alerts.items()}
    received = mailbox.read_all(tmp_path / "mail")
    message_ids = Counter(mail["Message-ID"] for mail in received)
    listed = {mail["Message-ID"]: set(ALERT_ID.findall(mail.get_content())) for mail in received}

    # The storm: digests only, each notification in one, each listed in its digest's email.
    storm_rows = by_client[storm]
    assert {row["status"] for row in storm_rows} == {"SENT"}
    assert all(row["digest_id"] is not None for row in storm_rows)
    storm_digests = {row["digest_id"] for row in storm_rows}
    # At most one email per group_interval after the first: the burst, and what came after it went out.
    assert len(storm_digests) in (1, 2)
    for digest_id in storm_digests:
        assert listed[f"<{digest_id}@alerting.local>"] == {
            row["alert_id"] for row in storm_rows if row["digest_id"] == digest_id}

    # Grouped by source: a digest per source, holding exactly that source's notifications.
    split_rows = by_client[split]
    assert {row["status"] for row in split_rows} == {"SENT"}
    sources: dict[str, set[str]] = {row["digest_id"]: set() for row in split_rows}
    for row, alert in zip(sorted(split_rows, key=lambda r: r["alert_id"]),
                          sorted(alerts[split], key=lambda a: a.alert_id), strict=True):
        sources[row["digest_id"]].add(alert.source)
    assert sorted(map(sorted, sources.values())) == [["split-a"], ["split-b"]]

    # The hourly limit: LIMIT sent alone, the rest waiting together for when the limit allows.
    limited_rows = by_client[limited]
    alone = [row for row in limited_rows if row["status"] == "SENT"]
    waiting = [row for row in limited_rows if row["status"] == "PENDING"]
    assert len(alone) == LIMIT and all(row["digest_id"] is None for row in alone)
    assert len(waiting) == len(alerts[limited]) - LIMIT
    [waiting_digest] = {row["digest_id"] for row in waiting}
    due = digests[waiting_digest]["next_attempt_at"]
    assert timedelta(minutes=59) < due - datetime.now(UTC) <= timedelta(hours=1)
    assert digests[waiting_digest]["status"] == "PENDING"

    # The silence: its matches SILENCED with its id, the rest delivered.
    assert sorted((row["status"], row["silenced_by"]) for row in by_client[muted]) == [
        ("SENT", None), ("SILENCED", silence.silence_id), ("SILENCED", silence.silence_id)]

    # The mailbox: exactly one email per digest sent and per notification sent alone.
    sent_digests = {digest_id for digest_id, digest in digests.items() if digest["status"] == "SENT"}
    assert message_ids == Counter({f"<{digest_id}@alerting.local>": 1 for digest_id in sent_digests}
                                  | {f"<{row['notification_id']}@alerting.local>": 1 for row in alone})
