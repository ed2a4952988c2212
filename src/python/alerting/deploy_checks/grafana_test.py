"""deploy/grafana/dashboards/alerting.json (Docker Compose): every panel has a unit, a legend
and the `service` variable in its queries; every metric it queries is one the code exports;
and every query is valid PromQL (checked with promtool)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from alerting.deploy_checks.support import exported_metrics, promtool

DASHBOARD = Path("deploy/grafana/dashboards/alerting.json")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel.get("type") != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_every_panel_has_a_unit() -> None:
    missing = [panel["title"] for panel in panels() if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit")]
    assert not missing, f"panels without a unit: {missing}"


def test_every_query_has_a_legend_with_the_labels_it_groups_by() -> None:
    for panel in panels():
        for target in panel["targets"]:
            legend = target.get("legendFormat", "")
            assert legend, f"{panel['title']}: no legendFormat"
            grouped = re.search(r"\bby \(([^)]*)\)", target["expr"])
            labels = {label.strip() for label in grouped.group(1).split(",")} - {"le"} if grouped else set()
            assert labels == set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend)), (panel["title"], legend)


def test_the_service_variable_is_defined_and_used_by_every_query() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert "service" in variables
    assert variables["service"]["includeAll"] and variables["service"]["allValue"] == ".*"
    for expression in expressions():
        assert 'service=~"$service"' in expression, expression


def test_panels_for_refused_recipients_and_failed_notifications() -> None:
    queried = " ".join(expressions())
    assert re.search(r"\balerting_recipients_refused_total\{", queried)
    assert re.search(r'\balerting_notifications_decided_total\{status="FAILED"', queried)


def test_every_metric_the_dashboard_queries_is_exported_by_the_code() -> None:
    variable_queries = [str(variable.get("query", "")) for variable in dashboard()["templating"]["list"]]
    queried = {name for text in expressions() + variable_queries for name in re.findall(r"\balerting_\w+", text)}
    assert queried
    unknown = queried - exported_metrics()
    assert not unknown, f"the dashboard queries metrics no code exports: {sorted(unknown)}"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool checks the PromQL of rules: give it each query, the variable set to "all", as a recording rule.
    rules = [{"record": f"dashboard:query_{number}", "expr": expression.replace("$service", ".*")}
             for number, expression in enumerate(expressions())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", path)
