"""What the deploy checks share: promtool, and the metric names the code exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# alerting/, read as text: in the Pants sandbox through the `src/python/alerting:modules` resources.
PACKAGE = Path(__file__).resolve().parent.parent


def promtool(*args: str | Path) -> str:
    """Run promtool; its output, or a test failure that shows it."""
    # The test sandbox may run with a bare PATH; Debian installs promtool in /usr/bin.
    found = shutil.which("promtool", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/local/bin"]))
    if found is None:
        pytest.fail("promtool is not installed: run `deploy/local-stack up`, which installs Debian's "
                    "prometheus package (or `sudo apt-get install prometheus`)", pytrace=False)
    result = subprocess.run([found, *map(str, args)], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def exported_metrics() -> set[str]:
    """Names of the series the code exports (prometheus_client metrics), read from the sources."""
    names: set[str] = set()
    for source in PACKAGE.rglob("*.py"):
        if source.name.endswith("_test.py"):
            continue
        for kind, name in re.findall(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"',
                                     source.read_text()):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            elif kind in ("Histogram", "Summary"):
                names |= {name, f"{name}_count", f"{name}_sum"} | ({f"{name}_bucket"} if kind == "Histogram" else set())
            else:
                names.add(name)
    assert "alerting_messages_processed_total" in names, f"no metric found under {PACKAGE}"
    return names
