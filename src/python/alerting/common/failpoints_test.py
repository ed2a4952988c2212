import signal
import subprocess
import sys

from alerting.common import failpoints


def test_unconfigured_failpoint_does_nothing() -> None:
    failpoints.configure(None)
    failpoints.failpoint("after_db_write")


def run_with_failpoint(value: str) -> subprocess.CompletedProcess[str]:
    program = (
        "from alerting.common.failpoints import failpoint\n"
        "for step in range(3):\n"
        "    failpoint('after_consume')\n"
        "    print(step, flush=True)\n"
    )
    env = {"ALERTING_FAILPOINT": value, "PYTHONPATH": ":".join(sys.path)}
    return subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)


def test_process_is_killed_the_nth_time_it_reaches_the_step() -> None:
    result = run_with_failpoint("after_consume:2")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["0"]


def test_other_steps_are_not_affected() -> None:
    result = run_with_failpoint("before_commit:1")
    assert result.returncode == 0
    assert result.stdout.split() == ["0", "1", "2"]
