"""A certificate authority and a server certificate for tests, made once per test process
by the local stack's own `certificates` command (openssl)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Certificates:
    ca: str  # PEM files
    cert: str
    key: str


def local_stack_script() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in ("deploy/local-stack", os.path.join(here, "..", "..", "..", "..", "deploy", "local-stack")):
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise RuntimeError("deploy/local-stack not found; run tests from the repo root or through pants")


def make_certificates() -> Certificates:
    """A new CA, and a server certificate it signed, in a new folder."""
    folder = tempfile.mkdtemp(prefix="alerting-tls-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    subprocess.run(["bash", local_stack_script(), "certificates", folder], check=True, capture_output=True)
    return Certificates(os.path.join(folder, "ca.pem"), os.path.join(folder, "server.pem"),
                        os.path.join(folder, "server.key"))


@functools.cache
def certificates() -> Certificates:
    """The test process's one CA and server certificate."""
    return make_certificates()
