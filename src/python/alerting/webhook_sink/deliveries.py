"""What the webhook sink decides of a request and keeps of it (pure, and its folder): whether
its signature verifies, as any receiver of the platform's webhooks would check it, and
one JSON file per request received."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# A signature older or newer than this is refused: a captured request cannot be replayed later.
TOLERANCE_SECONDS = 300


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: float) -> str | None:
    """Why the request is not the platform's, or None when its signature verifies."""
    if not timestamp.isdigit():
        return "no timestamp"
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return "timestamp out of tolerance"
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature) else "signature mismatch"


def keep(directory: Path, receiver: str, headers: Mapping[str, str], body: bytes, verified: bool,
         refused: str | None) -> Path:
    """One request as a JSON file: when, to which receiver, its identifying headers, whether
    it verified, and its body (parsed when it is JSON)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = body.decode("utf-8", "replace")
    record = {"received_at": time.time(), "receiver": receiver, "verified": verified, "refused": refused,
              "idempotency_key": headers.get("idempotency-key", ""), "traceparent": headers.get("traceparent", ""),
              "body": document}
    path = directory / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, ensure_ascii=False))
    temporary.rename(path)  # readers never see half a request
    return path


def read_all(directory: Path) -> list[dict[str, Any]]:
    """Every request kept so far, oldest first."""
    if not directory.is_dir():
        return []
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]
