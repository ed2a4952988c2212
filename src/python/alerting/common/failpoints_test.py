import signal
import subprocess
import sys
from pathlib import Path

from alerting.common import failpoints


def test_unconfigured_failpoint_does_nothing() -> None:
    failpoints.configure(None)
    failpoints.failpoint("after_db_write")


def run_with_failpoint(value: str, record_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    program = (
        "from alerting.common.failpoints import failpoint, unfinished\n"
        "held = []\n"
        "unfinished(lambda: held)\n"
        "for step in range(3):\n"
        "    held.append(f'item-{step}')\n"
        "    failpoint('after_consume')\n"
        "    print(step, flush=True)\n"
    )
    env = {"ALERTING_FAILPOINT": value, "PYTHONPATH": ":".join(sys.path)}
    if record_dir is not None:
        env["ALERTING_FAILPOINT_DIR"] = str(record_dir)
    return subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)


def test_process_is_killed_the_nth_time_it_reaches_the_step() -> None:
    result = run_with_failpoint("after_consume:2")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["0"]


def test_other_steps_are_not_affected() -> None:
    result = run_with_failpoint("before_commit:1")
    assert result.returncode == 0
    assert result.stdout.split() == ["0", "1", "2"]


def test_a_kill_at_the_failpoint_leaves_a_record_of_what_it_held(tmp_path: Path) -> None:
    result = run_with_failpoint("after_consume:2", tmp_path)
    assert result.returncode == -signal.SIGKILL
    [record] = tmp_path.iterdir()
    assert record.name.endswith(".after_consume")
    assert record.read_text().split() == ["item-0", "item-1"]
