"""deploy/prometheus/: the rules are valid, read only metrics Sluice exports, and every alert
fires on its fault and stays silent when healthy (`promtool test rules`)."""

import subprocess

import yaml

from tests.support.metric_names import exported_metric_names, metric_names_in
from tests.support.paths import REPO_ROOT
from tests.support.promtool import promtool

RULES = REPO_ROOT / "deploy" / "prometheus" / "sluice-rules.yaml"
RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "sluice-rules.test.yaml"


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_its_fault_and_stays_silent_when_healthy() -> None:
    result = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True,
                            text=True, timeout=120, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_test() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    firing: set[str] = set()
    silent: set[str] = set()
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert alerts - firing == set(), "alerts without a test where they fire"
    assert alerts - silent == set(), "alerts without a test where they stay silent"


def test_the_issue_s_alerts_are_all_there() -> None:
    expressions = " ".join(rule["expr"] for rule in _rules() if "alert" in rule)
    for metric in ("sluice_readiness_problem", "sluice_consumer_lag",
                   "sluice_oldest_unsettled_seconds", "sluice_dead_letters_total",
                   "sluice_dead_letter_limit_tripped", "sluice_s3_paused_calls",
                   "sluice_elasticsearch_backpressure_seconds",
                   "sluice_catalog_reader_failures_total", "sluice_ingest_requests_total"):
        assert metric in expressions or any(
            metric in rule["expr"] for rule in _rules() if "record" in rule), metric


def test_the_rules_read_only_metrics_sluice_exports() -> None:
    exported = exported_metric_names()
    for rule in _rules():
        unknown = metric_names_in(rule["expr"]) - exported
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_the_pod_monitor_scrapes_the_metrics_port_of_workers_and_ingest() -> None:
    monitor = yaml.safe_load((RULES.parent / "podmonitor.yaml").read_text())
    assert monitor["kind"] == "PodMonitor"
    (selector,) = monitor["spec"]["selector"]["matchExpressions"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for manifest in ("deployment.yaml", "ingest-deployment.yaml"):
        deployment = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / manifest).read_text())
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"][selector["key"]] in selector["values"], manifest
        ports = {port["name"] for port in pod["spec"]["containers"][0]["ports"]}
        assert endpoint["port"] in ports, manifest
    assert endpoint["path"] == "/metrics"
