"""The sink's mailbox: one .eml file per received message."""

from __future__ import annotations

import email
import email.policy
import time
import uuid
from email.message import EmailMessage
from pathlib import Path


def store(directory: Path, raw: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(raw)
    temporary.rename(path)  # readers never see half a message
    return path


def read_all(directory: Path) -> list[EmailMessage]:
    """Every message received so far, oldest first."""
    if not directory.is_dir():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(directory.glob("*.eml"))
    ]
