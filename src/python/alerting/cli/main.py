"""alertctl: operate the platform through the rule-service's gRPC API: tenants (clients),
their rules and granted sources, how their notifications are delivered (policies) and muted
(silences), notifications, dead letters, and the API keys every call presents.

    alertctl [--address HOST:PORT] [--api-key-file PATH] [--ca-file PATH] [--plaintext]
             [--timeout SECONDS] [--output table|json] COMMAND ...
    alertctl client create NAME | get ID | list | update ID --name N --version V | delete ID
    alertctl rule create --client ID --severity S --source S --name N (--email E | --receiver ID)... | get | list
                 | update | delete
    alertctl receiver add --client ID --name N (--webhook URL | --slack URL) | get ID | list [--client ID]
                 | rotate-secret ID | remove ID
    alertctl grant add --client ID [--prefix] SOURCE | list [--client ID] | remove --client ID [--prefix] SOURCE
    alertctl policy get --client ID | set --client ID [--group-by F,...] --group-wait D --group-interval D
                 [--max-emails-per-hour N] [--expected-version V] | delete --client ID [--version V]
    alertctl silence add --client ID [--severity S] [--source S] [--name N] (--duration D | --ends-at TIME)
                 [--starts-at TIME] --comment TEXT | get ID | list [--client ID] [--include-expired] | expire ID
    alertctl notification list [--client ID] [--status S] [--digest ID] | show ID | retry ID
    alertctl dlq list TOPIC [--from OFFSET] [--limit N] | replay TOPIC OFFSET...
    alertctl key create --admin | --client ID [--name N] [--expires-in DURATION | --expires-at TIME]
                 | list [--client ID] [--include-revoked] | revoke KEY_ID
    alertctl whoami

Assembly only: each command (group) is a module of its own beside this one, and what they
share (the connection, the global options, calls and their errors, output) is shared.py.
A new command is its module, named on the import line below and its command in COMMANDS.
"""

from __future__ import annotations

import click

from alerting.cli import (
    clients,
    dead_letters,
    grants,
    keys,
    notifications,
    policies,
    receivers,
    rules,
    silences,
    whoami,
)
from alerting.cli.exit_codes import help_text
from alerting.cli.shared import connect, global_options

COMMANDS: tuple[click.Command, ...] = (
    clients.client,
    rules.rule,
    receivers.receiver,
    grants.grant,
    policies.policy,
    silences.silence,
    notifications.notification,
    dead_letters.dlq,
    keys.key,
    whoami.whoami,
)


# Named: click's usage and error lines name the program by it (CliRunner too), not by the
# module that runs (python -m alerting.cli.main, as the PEX does).
@click.group("alertctl", commands=COMMANDS, epilog=help_text(),
             context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.pass_context
def alertctl(context: click.Context, address: str | None, api_key: str | None, ca_file: str | None, plaintext: bool,
             timeout: float, output: str, json_alias: bool) -> None:
    """Operate the alerting platform through the rule-service's gRPC API: tenants
    (clients), their rules and granted sources, how their notifications are delivered
    (policies) and muted (silences), the notifications sent, dead letters, and API keys.

    Global options come before the command, e.g. `alertctl --output json rule list`.
    Every call goes over TLS (unless --plaintext) and presents an API key: an ADMIN key
    manages clients, the sources granted to them and every key, a TENANT key one client's
    rules, policy, silences, notifications and keys. A failed call prints
    `Error: <gRPC code>: <details>` on stderr and exits with the code below.
    """
    connect(context, address, api_key, ca_file, plaintext, timeout, output, json_alias)


def main() -> None:
    alertctl(prog_name=alertctl.name)


if __name__ == "__main__":
    main()
