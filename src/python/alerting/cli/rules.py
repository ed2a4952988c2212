"""alertctl rule: a client's rules, which alerts notify which emails."""

from __future__ import annotations

from collections.abc import Callable

import click

from alerting.cli.shared import Context, client_filter, paging_options, pass_context, version_option
from alerting.v1 import rule_service_pb2 as api
from alerting.v1.rule_service_pb2_grpc import RuleServiceStub

RULE_COLUMNS = ("rule_id", "client_id", "severity", "source", "name", "emails", "receiver_ids", "enabled", "version",
                "updated_by")


@click.group()
def rule() -> None:
    """A client's rules.

    A rule names which alerts notify whom: a severity, a source and a name, where '*'
    matches any value, and email addresses and receivers (alertctl receiver).
    """


def rule_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--severity", required=True, help="LOW, MEDIUM, HIGH, CRITICAL or '*'."),
        click.option("--source", required=True, help="The alert's exact source, or '*'."),
        click.option("--name", required=True, help="The alert's exact name, or '*'."),
        click.option("--email", "emails", multiple=True, metavar="ADDRESS",
                     help="Who is notified; repeat it for each address (up to 20)."),
        click.option("--receiver", "receiver_ids", multiple=True, metavar="RECEIVER_ID",
                     help="A webhook or Slack receiver of the client; repeat it for each (up to 20). A rule has"
                          " at least one --email or --receiver."),
    ]):
        command = option(command)
    return command


@rule.command("create")
@click.option("--client", "client_id", required=True, metavar="CLIENT_ID", help="The client that owns the rule.")
@rule_options
@click.option("--disabled", is_flag=True, help="Create it disabled: it matches nothing until enabled.")
@pass_context
def rule_create(
    ctx: Context, client_id: str, severity: str, source: str, name: str, emails: tuple[str, ...],
    receiver_ids: tuple[str, ...], disabled: bool
) -> None:
    """Create a rule and show it.

    At least one of severity, source and name must not be '*' (quote '*' so that the
    shell does not expand it).
    """
    request = api.CreateRuleRequest(client_id=client_id, severity=severity, source=source, name=name,
                                    emails=list(emails), receiver_ids=list(receiver_ids), disabled=disabled)
    ctx.show([ctx.call(ctx.stub(RuleServiceStub).CreateRule, request)], RULE_COLUMNS)


@rule.command("get")
@click.argument("rule_id")
@pass_context
def rule_get(ctx: Context, rule_id: str) -> None:
    """Show the rule RULE_ID (a UUID)."""
    ctx.show([ctx.call(ctx.stub(RuleServiceStub).GetRule, api.GetRuleRequest(rule_id=rule_id))], RULE_COLUMNS)


@rule.command("list")
@client_filter("rules")
@paging_options
@pass_context
def rule_list(ctx: Context, client_id: str, page_size: int, every_page: bool) -> None:
    """List rules, ordered by id."""
    ctx.show_list(ctx.stub(RuleServiceStub).ListRules,
                  lambda token: api.ListRulesRequest(client_id=client_id, page_size=page_size, page_token=token),
                  "rules", every_page, RULE_COLUMNS)


@rule.command("update")
@click.argument("rule_id")
@rule_options
@click.option("--enabled/--disabled", default=True, show_default=True, help="Whether the rule matches alerts.")
@version_option(required=True)
@pass_context
def rule_update(
    ctx: Context,
    rule_id: str,
    severity: str,
    source: str,
    name: str,
    emails: tuple[str, ...],
    receiver_ids: tuple[str, ...],
    enabled: bool,
    expected_version: int,
) -> None:
    """Replace a rule's patterns, endpoints and flag.

    Replaces the patterns, the emails, the receivers and the enabled flag of the rule RULE_ID, and
    shows it at its new version. Without --disabled the rule is enabled.
    """
    request = api.UpdateRuleRequest(rule_id=rule_id, severity=severity, source=source, name=name,
                                    emails=list(emails), receiver_ids=list(receiver_ids), enabled=enabled,
                                    expected_version=expected_version)
    ctx.show([ctx.call(ctx.stub(RuleServiceStub).UpdateRule, request)], RULE_COLUMNS)


@rule.command("delete")
@click.argument("rule_id")
@version_option(required=False)
@pass_context
def rule_delete(ctx: Context, rule_id: str, expected_version: int) -> None:
    """Delete the rule RULE_ID."""
    ctx.call(ctx.stub(RuleServiceStub).DeleteRule,
             api.DeleteRuleRequest(rule_id=rule_id, expected_version=expected_version))
    click.echo(f"deleted rule {rule_id}")
