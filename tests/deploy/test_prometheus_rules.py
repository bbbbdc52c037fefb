"""deploy/prometheus and deploy/grafana: promtool accepts the config, the rules and their
unit tests; every metric they use is one the code exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import (
    DASHBOARD,
    PROMETHEUS_CONFIG,
    ROOT,
    RULES,
    RULES_TEST,
    binary,
    exported_metric_names,
    load_yaml,
    metric_names,
    run,
)

pytestmark = pytest.mark.integration

RUNBOOK = "README.md#operations"


def alerting_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and query variables."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
    queries = [t["expr"] for p in panels for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def test_promtool_check_config() -> None:
    result = run(binary("promtool"), "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = run(binary("promtool"), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alerting_rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = run(binary("promtool"), "test", "rules", RULES_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issue_alerts_exist_with_annotations_and_a_runbook() -> None:
    rules = alerting_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    expected = {
        "StreamerDown",
        "StreamerReplicationLagBytesHigh",
        "StreamerReplicationLagSecondsHigh",
        "StreamerSlotRetainedWalHigh",
        "StreamerSlotInactive",
        "StreamerRejectedRateHigh",
        "StreamerNotApplying",
    }
    assert expected <= set(names)
    for rule in rules:
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), rule["alert"]
        assert annotations.get("description"), rule["alert"]
        assert annotations.get("runbook") == RUNBOOK, rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
    # the runbook link lands on a heading of the README
    assert "\n## Operations\n" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alerting_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def test_rules_use_only_exported_metrics() -> None:
    exported = exported_metric_names()
    used = {n for r in alerting_rules() for n in metric_names(r["expr"])}
    assert used, "no streamer_* metric found in the rules"
    assert used - exported == set()


def test_dashboard_uses_only_exported_metrics() -> None:
    exported = exported_metric_names()
    used = {n for q in dashboard_queries() for n in metric_names(q)}
    assert used - exported == set()
    # the panels the issue asks for
    assert {
        "streamer_rows_total",
        "streamer_replication_lag_bytes",
        "streamer_replication_lag_seconds",
        "streamer_end_to_end_latency_seconds_bucket",
        "streamer_batch_duration_seconds_bucket",
        "streamer_rejected_total",
        "streamer_slot_retained_wal_bytes",
    } <= used


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query (Grafana variables substituted) as a recording rule."""
    substitutions = {"$__rate_interval": "1m", "$job": "streamer", "$instance": ".*"}
    rules = []
    for i, query in enumerate(dashboard_queries()):
        if query.startswith("label_values("):
            continue  # a Grafana function, not PromQL
        expr = query
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, query
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(binary("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_self_consistent() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "streamer"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in ("job", "instance", "datasource"):
                if f"${name}" in target["expr"]:
                    assert name in variables
