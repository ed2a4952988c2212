"""webhook-sink: a local receiver of the platform's webhooks and Slack messages, as a tenant
would run one. It verifies each webhook's signature with the receiver's secret, keeps every
request it gets as a JSON file, and lists them on a page (http://127.0.0.1:8091/) and as
JSON (/deliveries).

    POST /hooks/<name>   a webhook, signed: the secret is the file <secrets dir>/<name>
    POST /slack/<name>   a Slack-format message (Slack's incoming webhooks are not signed)
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import Counter

from alerting.common.service import Lifecycle, run_service
from alerting.common.settings import WebhookSinkSettings
from alerting.webhook_sink.deliveries import keep, read_all, verify

log = logging.getLogger(__name__)
RECEIVED = Counter("alerting_webhook_sink_requests_total", "Requests the webhook sink received, by outcome.",
                   ["outcome"])
MAX_BODY = 4 * 1024 * 1024
NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def page(deliveries: list[dict[str, Any]]) -> bytes:
    rows = []
    for item in reversed(deliveries):
        body = item["body"] if isinstance(item["body"], dict) else {}
        notifications = body.get("notifications") or []
        first = notifications[0]["alert"] if notifications else {}
        what = (f"{body.get('kind', 'slack message')} of {len(notifications)}: {first.get('severity', '')}"
                f" {first.get('source', '')}/{first.get('name', '')}") if notifications else body.get("text", "")
        received = datetime.fromtimestamp(item["received_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        verdict = "verified" if item["verified"] else (item["refused"] or "unsigned")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
            received, item["receiver"], verdict, item["idempotency_key"], what)) + "</tr>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Webhook sink</title>"
            "<style>body{font-family:sans-serif}td,th{padding:4px 10px;text-align:left}</style></head><body>"
            f"<h1>Webhook sink</h1><p>{len(deliveries)} requests received, newest first.</p>"
            "<table><tr><th>received (UTC)</th><th>receiver</th><th>signature</th><th>Idempotency-Key</th>"
            "<th>what</th></tr>" + "".join(rows) + "</table></body></html>").encode()


def handler(settings: WebhookSinkSettings) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            deliveries = read_all(settings.webhook_dir)
            if self.path == "/deliveries":
                self.answer(200, json.dumps(deliveries, ensure_ascii=False).encode(), "application/json")
            elif self.path == "/":
                self.answer(200, page(deliveries), "text/html; charset=utf-8")
            else:
                self.answer(404, b"not found\n")

        def do_POST(self) -> None:  # noqa: N802
            channel, _, name = self.path.strip("/").partition("/")
            length = int(self.headers.get("content-length") or 0)
            if channel not in ("hooks", "slack") or not name or not set(name) <= NAME_CHARACTERS or length > MAX_BODY:
                self.answer(404 if length <= MAX_BODY else 413, b"no such receiver\n")
                return
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            refused = None
            if channel == "hooks":
                secret_file = settings.webhook_sink_secrets_dir / name
                refused = verify(secret_file.read_text().strip(), headers.get("x-alerting-timestamp", ""),
                                 headers.get("x-alerting-signature", ""), body, time.time()) \
                    if secret_file.is_file() else "no secret for this receiver"
            keep(settings.webhook_dir, f"{channel}/{name}", headers, body, channel == "hooks" and refused is None,
                 refused)
            status = 401 if refused else settings.webhook_sink_replies.get(name, 200)
            RECEIVED.labels("refused" if refused else str(status)).inc()
            self.answer(status, (refused or "ok").encode() + b"\n")

        def answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug(format, *args)

    return Handler


async def run(settings: WebhookSinkSettings, lifecycle: Lifecycle) -> None:
    server = ThreadingHTTPServer((settings.listen_host, settings.webhook_sink_port), handler(settings))
    server.daemon_threads = True
    serving = asyncio.create_task(asyncio.to_thread(server.serve_forever))
    log.info("webhook sink on http://%s:%d/ keeping requests in %s", settings.listen_host,
             settings.webhook_sink_port, settings.webhook_dir)
    lifecycle.ready = lambda: not serving.done()
    try:
        await lifecycle.stop.wait()
    finally:
        server.shutdown()
        await serving
        server.server_close()


def main() -> None:
    run_service("webhook-sink", WebhookSinkSettings(), run)


if __name__ == "__main__":
    main()
