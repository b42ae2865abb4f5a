"""deploy/grafana/sluice.json: a Grafana dashboard whose every query parses as PromQL
(promtool) and reads only metrics Sluice exports, covering what the alert rules watch."""

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.support.metric_names import exported_metric_names, metric_names_in
from tests.support.paths import REPO_ROOT
from tests.support.promtool import promtool

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "sluice.json"
RULES = REPO_ROOT / "deploy" / "prometheus" / "sluice-rules.yaml"
# Grafana's variables, replaced by what they stand for, so that promtool can parse the query.
VARIABLES = {"$__rate_interval": "5m", "$ingest_job": ".*", "$job": ".*"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _expressions() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in _dashboard()["panels"]
            for target in panel.get("targets", [])]


def _concrete(expression: str) -> str:
    for variable, value in VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def test_panels_have_unique_ids_fit_the_grid_and_use_the_datasource_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {item["name"] for item in dashboard["templating"]["list"]}
    assert {"datasource", "job", "ingest_job"} <= variables
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert [t["refId"] for t in panel["targets"]] == [
                chr(65 + i) for i in range(len(panel["targets"]))]


def test_every_query_reads_only_metrics_sluice_exports() -> None:
    exported = exported_metric_names()
    for title, expression in _expressions():
        names = metric_names_in(expression)
        assert names, title
        assert names <= exported, (title, names - exported)
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            assert metric_names_in(variable["definition"]) <= exported


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    # promtool parses expressions in rule files: one recording rule per panel query.
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": f"grafana:query_{index}", "expr": _concrete(expression)}
        for index, (_, expression) in enumerate(_expressions())]}]}
    path = tmp_path / "grafana-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_what_the_alerts_watch() -> None:
    shown = set().union(*(metric_names_in(expression) for _, expression in _expressions()))
    rules = yaml.safe_load(RULES.read_text())["groups"]
    watched = set().union(*(metric_names_in(rule["expr"]) for group in rules
                            for rule in group["rules"]))
    assert watched - shown == set()
    assert re.search(r"sluice_events_delivered_total", " ".join(e for _, e in _expressions()))
