"""The webhook sink over real HTTP: a webhook signed as the sender signs it verifies and is
kept; a wrong signature, a stale one and an unknown receiver are refused (401) and kept as
refused; Slack messages are kept unsigned; a scripted answer is given; the page and the
JSON list show what came."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from alerting.common.settings import WebhookSinkSettings
from alerting.rules.receivers import new_secret, signature
from alerting.testsupport.services import free_port, running
from alerting.webhook_sink.main import run


async def test_the_sink_verifies_keeps_and_lists_what_it_receives(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    secret = new_secret()
    (secrets / "ops").write_text(secret + "\n")
    settings = WebhookSinkSettings(webhook_dir=tmp_path / "received", webhook_sink_secrets_dir=secrets,
                                   webhook_sink_port=free_port(), metrics_port=free_port(),
                                   webhook_sink_replies={"gone": 410})
    body = json.dumps({"schema": "alerting.webhook/v1", "kind": "notification", "id": "n-1", "notifications": [
        {"notification_id": "n-1", "alert": {"severity": "HIGH", "source": "db", "name": "disk_full"}}]}).encode()
    now = int(time.time())

    def signed(secret: str, timestamp: int) -> dict[str, str]:
        return {"x-alerting-timestamp": str(timestamp), "x-alerting-signature": signature(secret, timestamp, body),
                "idempotency-key": "n-1"}

    async with running(run, settings) as lifecycle, httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.webhook_sink_port}") as client:
        for _ in range(100):
            if lifecycle.ready():
                break
            await asyncio.sleep(0.05)
        answers = [
            (await client.post("/hooks/ops", content=body, headers=signed(secret, now))).status_code,
            (await client.post("/hooks/ops", content=body, headers=signed(new_secret(), now))).status_code,
            (await client.post("/hooks/ops", content=body, headers=signed(secret, now - 3600))).status_code,
            (await client.post("/hooks/nobody", content=body, headers=signed(secret, now))).status_code,
            (await client.post("/slack/chat", content=b'{"text": "[HIGH] db/disk_full"}')).status_code,
            (await client.post("/slack/gone", content=b'{"text": "x"}')).status_code,
        ]
        assert answers == [200, 401, 401, 401, 200, 410]
        listed = (await client.get("/deliveries")).json()
        assert [(item["receiver"], item["verified"], item["refused"]) for item in listed] == [
            ("hooks/ops", True, None), ("hooks/ops", False, "signature mismatch"),
            ("hooks/ops", False, "timestamp out of tolerance"), ("hooks/nobody", False, "no secret for this receiver"),
            ("slack/chat", False, None), ("slack/gone", False, None)]
        assert listed[0]["idempotency_key"] == "n-1" and listed[0]["body"]["id"] == "n-1"
        shown = (await client.get("/")).text
        assert "6 requests received" in shown and "notification of 1: HIGH db/disk_full" in shown
        assert "[HIGH] db/disk_full" in shown
