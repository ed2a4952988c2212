"""What a person sees of the demo in a browser: headless Chromium opens Mailpit and Zipkin,
takes screenshots and fails unless Mailpit lists the demo's newest email and Zipkin shows that
email's trace across the producer, the evaluator, the aggregator and the sender.

    python3 src/python/alerting/deploy_checks/ui_check.py --out DIR   (or: deploy/observability screenshot)

It needs Debian's chromium and chromium-driver, and `deploy/platform up` run with Mailpit and
Zipkin up. Standard library only, so it runs without Pants. Chromium is driven through
chromedriver's WebDriver protocol: JSON over HTTP on loopback.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Without the background-networking flags Chromium keeps calling hosts this machine cannot reach.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1000",
]
DEMO_DOMAIN = "@demo.example"  # where the demo's rules send
PRODUCER_SPAN = "alerts.new publish"
DIGEST_SUBJECT = re.compile(r"^\[\w+\] \d+ alerts?: ")  # sender/email_message.py's digest_subject
WORKERS = ("evaluator", "aggregator", "sender")


class CheckFailed(Exception):
    pass


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def call(method: str, url: str, body: object | None = None) -> Any:
    """One WebDriver command; its value, or CheckFailed with chromedriver's message."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["value"]
    except urllib.error.HTTPError as error:
        raise CheckFailed(f"chromedriver: {method} {url}: {error.read().decode(errors='replace')}") from None


def eventually(what: str, attempt: Callable[[], Any], timeout: float) -> Any:
    """attempt()'s first truthy answer, tried until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        answer = attempt()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


class Browser:
    """A Chromium session in chromedriver."""

    def __init__(self, driver: str, session: str) -> None:
        self.url = f"{driver}/session/{session}"

    def open(self, url: str) -> None:
        call("POST", f"{self.url}/url", {"url": url})

    def text(self) -> str:
        """The page's text as rendered (CSS text-transform applied)."""
        return str(call("POST", f"{self.url}/execute/sync", {"script": "return document.body.innerText", "args": []}))

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(call("GET", f"{self.url}/screenshot")))

    def shows(self, url: str, wanted: list[str], screenshot: Path, timeout: float = 30) -> None:
        """Open `url`, wait until its text holds every one of `wanted` (ignoring case), and
        save a screenshot, also when it never does."""
        self.open(url)
        missing: list[str] = []

        def all_shown() -> bool:
            text = self.text().lower()
            missing[:] = [each for each in wanted if each.lower() not in text]
            return not missing

        try:
            eventually(f"{url} shows {wanted}", all_shown, timeout)
            time.sleep(1)  # let images and fonts settle for the picture
        except CheckFailed:
            raise CheckFailed(f"{url} does not show {missing} (see {screenshot})") from None
        finally:
            self.screenshot(screenshot)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromedriver on a free loopback port, driving Debian's chromium with a new profile."""
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            raise CheckFailed(f"{program} is not installed: sudo apt-get install chromium chromium-driver")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([str(shutil.which("chromedriver")), f"--port={port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually("chromedriver answers", lambda: _answers(f"{driver}/status"), 20)
        with tempfile.TemporaryDirectory(prefix="ui-check-profile-") as profile:
            options = {"binary": shutil.which("chromium"), "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]}
            session = call("POST", f"{driver}/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})["sessionId"]
            try:
                yield Browser(driver, session)
            finally:
                call("DELETE", f"{driver}/session/{session}")
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    try:
        return bool(get_json(url)["value"]["ready"])
    except OSError:
        return False


def newest_demo_email(mailpit: str) -> dict[str, Any]:
    """The newest message in Mailpit addressed to the demo's recipients."""
    try:
        listed = get_json(f"{mailpit}/api/v1/messages?limit=100")["messages"]
    except OSError as error:
        raise CheckFailed(f"Mailpit does not answer at {mailpit} ({error}): deploy/observability status") from None
    for message in listed:  # newest first
        if any(to["Address"].endswith(DEMO_DOMAIN) for to in message["To"]):
            return dict(message)
    raise CheckFailed(f"no email to *{DEMO_DOMAIN} in Mailpit: did the demo's mail go to Mailpit? "
                      "(deploy/platform up says where the sender sends)")


def trace_of(zipkin: str, tag: str, email_id: str) -> list[dict[str, Any]]:
    """The spans of the trace whose sender span names the email (`tag`: its notification's
    or its digest's id), once every worker's spans have arrived (the services export in
    batches, seconds apart)."""
    query = urllib.parse.urlencode({"serviceName": "sender", "lookback": 7 * 24 * 3600 * 1000, "limit": 10,
                                    "annotationQuery": f"{tag}={email_id}"})

    def complete() -> list[dict[str, Any]] | None:
        try:
            traces = get_json(f"{zipkin}/api/v2/traces?{query}")
        except OSError:
            return None
        for spans in traces:
            if {*WORKERS} <= services(spans) and any(span.get("name") == PRODUCER_SPAN for span in spans):
                return list(spans)
        return None

    return list(eventually(f"Zipkin has the trace of email {email_id} from the producer to the sender (are the"
                           " services' spans going to Zipkin?)", complete, 30))


def services(spans: list[dict[str, Any]]) -> set[str]:
    return {span.get("localEndpoint", {}).get("serviceName", "") for span in spans}


def check(mailpit: str, zipkin: str, out: Path) -> list[str]:
    """Run the check; lines that say what was seen."""
    out.mkdir(parents=True, exist_ok=True)
    email = newest_demo_email(mailpit)
    subject, recipient = email["Subject"], email["To"][0]["Address"]
    email_id = email["MessageID"].strip("<>").split("@")[0]
    # A digest's email ("[HIGH] 5 alerts: db/disk_full") lists its alerts; a notification's
    # own email shows its one alert.
    digest = DIGEST_SUBJECT.match(subject) is not None
    spans = trace_of(zipkin, "alerting.digest_id" if digest else "alerting.notification_id", email_id)
    trace_id = spans[0]["traceId"]
    producer = next(span["localEndpoint"]["serviceName"] for span in spans if span.get("name") == PRODUCER_SPAN)
    with chromium() as browser:
        browser.shows(f"{mailpit}/", [subject, recipient], out / "mailpit-inbox.png")
        browser.shows(f"{mailpit}/view/{email['ID']}",
                      [subject, "in the order they were recorded" if digest else "Alert id:"],
                      out / "mailpit-message.png")
        browser.shows(f"{zipkin}/zipkin/traces/{trace_id}", [producer, *WORKERS, PRODUCER_SPAN, "smtp send"],
                      out / "zipkin-trace.png")
    return [
        f"Mailpit lists the demo's email '{subject}' to {recipient}: {out / 'mailpit-inbox.png'}, "
        f"{out / 'mailpit-message.png'}",
        f"Zipkin shows its trace {trace_id} ({len(spans)} spans: {producer} → {' → '.join(WORKERS)}): "
        f"{out / 'zipkin-trace.png'}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the screenshots go")
    parser.add_argument("--mailpit", default="http://127.0.0.1:8025")
    parser.add_argument("--zipkin", default="http://127.0.0.1:9411")
    arguments = parser.parse_args()
    try:
        lines = check(arguments.mailpit.rstrip("/"), arguments.zipkin.rstrip("/"), arguments.out)
    except CheckFailed as failure:
        print(f"ui check FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("\n".join(f"ui check: {line}" for line in lines))


if __name__ == "__main__":
    main()
