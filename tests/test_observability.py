"""Alert rules pass promtool's checks and unit tests; the Kubernetes PrometheusRule and the
dashboard ConfigMap are what their sources generate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "observability" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make tools` installs Debian's prometheus package"
    return subprocess.run(
        [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
    )


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    tested = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested


def test_generated_observability_files_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "observability.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_for_kubernetes_has_the_same_groups_as_compose() -> None:
    rule = yaml.safe_load((ROOT / "k8s" / "observability" / "prometheusrule.yaml").read_text())
    source = yaml.safe_load((RULES / "alerts.yml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == source["groups"]


def test_the_dashboard_configmap_carries_the_compose_dashboard() -> None:
    cm = yaml.safe_load((ROOT / "k8s" / "observability" / "grafana-dashboard.yaml").read_text())
    dashboard = json.loads((ROOT / "observability/grafana/dashboards/seoblog.json").read_text())
    assert json.loads(cm["data"]["seoblog.json"]) == dashboard
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ("throughput", "latency", "failures", "lag", "tokens", "cost", "cache", "memory"):
        assert wanted in titles
