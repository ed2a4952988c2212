"""The local stack's data at rest, as another local OS user (`nobody`) finds it: it reads
no data folder, secret or key, and cannot log in to Postgres as its super user (the socket's
folder is closed to it, and TCP asks for a password)."""

from __future__ import annotations

import os
import subprocess

import pytest

from alerting.testsupport.stack import local_state

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another OS user needs root")


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nobody", "--", *command], capture_output=True, text=True, timeout=30)


def test_another_os_user_reads_none_of_the_stacks_data_or_secrets() -> None:
    state = local_state()
    for folder in ("stack/kafka/data", "stack/redis", "stack/postgres", "stack/pg-run", "secrets", "tls"):
        path = state / folder
        assert path.is_dir(), f"{path}: run `deploy/local-stack up` first"
        listing = as_nobody("ls", str(path))
        assert (listing.returncode, "Permission denied" in listing.stderr) == (2, True), folder
    for secret in ("secrets/postgres/alerting.password", "secrets/kafka/admin.password", "tls/ca.key",
                   "stack/kafka/server.properties", "stack/redis.conf"):
        assert as_nobody("cat", str(state / secret)).returncode != 0, secret


def test_another_os_user_cannot_log_in_as_the_postgres_super_user() -> None:
    socket_folder = str(local_state() / "stack" / "pg-run")
    for host in (socket_folder, "127.0.0.1"):
        login = as_nobody("psql", "-w", "-h", host, "-U", "postgres", "-d", "postgres", "-c", "SELECT 1")
        assert login.returncode == 2, (host, login.stdout)
        assert any(refusal in login.stderr for refusal in ("Permission denied", "no password supplied")), login.stderr
