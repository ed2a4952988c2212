"""alertctl as assembled: every command and option explains itself, and the program is
called alertctl however it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import click
from click.testing import CliRunner

from alerting.cli.main import alertctl
from alerting.testsupport.alertctl import CLIENT_ENVIRONMENT

WIDE = 1000  # terminal width for help text: no wrapping, so option help appears verbatim


def every_command(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))
        else:
            yield (*path, name), command


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_command_and_option_explains_itself() -> None:
    commands = list(every_command(alertctl))
    assert [" ".join(path) for path, _ in commands] == [
        "", "client", "client create", "client delete", "client get", "client list", "client update",
        "dlq", "dlq list", "dlq replay",
        "grant", "grant add", "grant list", "grant remove",
        "key", "key create", "key list", "key revoke",
        "notification", "notification list", "notification retry", "notification show",
        "policy", "policy delete", "policy get", "policy set",
        "receiver", "receiver add", "receiver get", "receiver list", "receiver remove", "receiver rotate-secret",
        "receiver update",
        "rule", "rule create", "rule delete", "rule get", "rule list", "rule update",
        "silence", "silence add", "silence expire", "silence get", "silence list",
        "whoami",
    ]
    for path, command in commands:
        shown = CliRunner().invoke(alertctl, [*path, "--help"], terminal_width=WIDE, max_content_width=WIDE)
        assert (shown.exit_code, shown.stderr) == (0, ""), path
        assert shown.stdout.startswith(f"Usage: {' '.join(('alertctl', *path))} [OPTIONS]"), path
        assert command.help, f"{path} has no help"
        assert flat(command.help) in flat(shown.stdout), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts} has no help"
                assert param.help in shown.stdout, (path, param.opts)
            else:  # an argument: the command's help says what it is
                assert param.human_readable_name in command.help, (path, param.human_readable_name)


def test_the_top_level_help_ends_with_the_exit_code_table() -> None:
    shown = CliRunner().invoke(alertctl, ["--help"])
    assert shown.exit_code == 0
    assert shown.stdout.endswith("""
  Exit codes:

    0  success
    1  any other failure (UNKNOWN, INTERNAL, UNIMPLEMENTED, CANCELLED, ...)
    2  usage error: a bad or missing argument or option; nothing was sent
    3  INVALID_ARGUMENT: a value the server refused; the details name the field
    4  NOT_FOUND: no such id or dead-letter offset
    5  FAILED_PRECONDITION, ALREADY_EXISTS: wrong state, e.g. a stale --version
    6  UNAUTHENTICATED, PERMISSION_DENIED: no valid API key, or one whose role may not do this
    7  RESOURCE_EXHAUSTED: a quota or the rate limit, or a request or answer too large
    8  UNAVAILABLE, DEADLINE_EXCEEDED: unreachable, or no answer within --timeout
""")


def test_usage_and_error_lines_name_the_program_alertctl() -> None:
    # As the PEX runs it: the module as __main__, where click alone would say `python -m alerting.cli.main`.
    environment = {name: value for name, value in os.environ.items() if name not in CLIENT_ENVIRONMENT}
    run = subprocess.run([sys.executable, "-m", "alerting.cli.main", "notification", "list", "--status", "muted"],
                         capture_output=True, text=True, timeout=120,
                         env={**environment, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert (run.returncode, run.stdout, run.stderr.splitlines()[:2]) == (
        2, "", ["Usage: alertctl notification list [OPTIONS]", "Try 'alertctl notification list --help' for help."])
