"""Deployment files: compose's observability profile renders and points at files that exist,
and the project's own k8s rules (scripts/k8s_check.py) catch what they are there to catch."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SERVICES = {
    "gateway": 8000,
    "crawler": 8001,
    "translator": 8002,
    "generator": 8003,
    "monitor": 8004,
}


def load_checker() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_check", REPO / "scripts" / "k8s_check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


k8s_check = load_checker()


def compose_command() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]):
            probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                return cmd
    return None


def secrets_env() -> dict[str, str]:
    env = dict(os.environ, SEOBLOG_EVENT_KEY="k" * 64)
    for user in (*SERVICES, "admin"):
        env[f"NATS_{user.upper()}_PASSWORD"] = f"pw-{user}"
    return env


def test_the_observability_profile_renders_and_mounts_files_that_exist() -> None:
    config = k8s_check.compose_config()
    services = config["services"]
    for name in ("prometheus", "grafana", "jaeger"):
        assert "observability" in services[name]["profiles"], name
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    mounts: dict[str, Path] = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
            if source.startswith(("./", "/")):
                path = Path(source) if source.startswith("/") else REPO / source
                assert path.exists(), source
                mounts[target] = path
    prometheus = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert [Path(f).name for f in prometheus["rule_files"]] == ["alerts.yml"]
    assert mounts["/etc/prometheus/alerts.yml"] == REPO / "observability/prometheus/alerts.yml"
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]
    }
    for name, port in SERVICES.items():
        assert targets[f"seoblog-{name}"] == [f"{name}:{port}"]
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["NATS_USER"] == name
    provisioning = mounts["/etc/grafana/provisioning"]
    dashboards = yaml.safe_load((provisioning / "dashboards" / "seoblog.yaml").read_text())
    folder = dashboards["providers"][0]["options"]["path"]
    assert (mounts[folder] / "seoblog.json").is_file()
    sources = yaml.safe_load((provisioning / "datasources" / "seoblog.yaml").read_text())
    urls = {s["type"]: s["url"] for s in sources["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}


def test_prometheus_config_and_its_rules_pass_promtool(tmp_path: Path) -> None:
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (make promtool)")
    shutil.copy(REPO / "observability/prometheus/alerts.yml", tmp_path / "alerts.yml")
    text = (REPO / "observability/prometheus/prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(text.replace("/etc/prometheus/", ""))
    out = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_refuses_to_start_without_the_nats_passwords() -> None:
    cmd = compose_command()
    if cmd is None:
        pytest.skip("no docker compose here")
    env = secrets_env()
    del env["NATS_TRANSLATOR_PASSWORD"]
    out = subprocess.run(
        [*cmd, "config"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode != 0
    assert "NATS_TRANSLATOR_PASSWORD" in out.stderr


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    if not (shutil.which("kubectl") or shutil.which("kustomize")):
        pytest.skip("neither kubectl nor kustomize installed")
    return {target: k8s_check.render(target) for target in k8s_check.TARGETS}


def problems(rendered: dict[str, list[dict[str, Any]]]) -> list[str]:
    report = k8s_check.Report()
    k8s_check.project_rules(rendered, report)
    return list(report.errors)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_shipped_manifests_follow_the_project_rules(rendered) -> None:
    assert problems(rendered) == []


def test_a_crawler_policy_that_lets_it_reach_private_ranges_is_caught(rendered) -> None:
    broken = copy.deepcopy(rendered)
    policy = find(broken["k8s/overlays/prod"], "NetworkPolicy", "crawler")
    block = policy["spec"]["egress"][0]["to"][0]["ipBlock"]
    block["except"] = [c for c in block["except"] if c not in ("10.0.0.0/8", "169.254.0.0/16")]
    found = problems(broken)
    assert any("crawler reach 10.0.0.0/8" in p for p in found), found
    assert any("crawler reach 169.254.0.0/16" in p for p in found), found


def test_a_service_without_its_nats_secret_or_event_key_is_caught(rendered) -> None:
    broken = copy.deepcopy(rendered)
    deployment = find(broken["k8s/overlays/prod"], "Deployment", "translator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "NATS_PASSWORD", "value": "inline"} if e["name"] == "NATS_PASSWORD" else e
        for e in container["env"]
        if e["name"] != "SEOBLOG_EVENT_KEY"
    ]
    found = problems(broken)
    assert any("translator: NATS_PASSWORD must come from" in p for p in found), found
    assert any("translator: SEOBLOG_EVENT_KEY" in p for p in found), found


def test_keda_reading_the_client_service_of_a_clustered_nats_is_caught(rendered) -> None:
    broken = copy.deepcopy(rendered)
    scaled = find(broken["k8s/overlays/prod"], "ScaledObject", "generator")
    scaled["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"] = "nats:8222"
    found = problems(broken)
    assert any("ScaledObject/generator" in p and "nats-headless" in p for p in found), found


def test_a_floating_image_tag_and_a_missing_default_deny_are_caught(rendered) -> None:
    broken = copy.deepcopy(rendered)
    dev = broken["k8s/overlays/dev"]
    find(dev, "Deployment", "jaeger")["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "jaegertracing/jaeger:latest"
    )
    dev.remove(find(dev, "NetworkPolicy", "default-deny"))
    found = problems(broken)
    assert any("jaegertracing/jaeger:latest: no exact version" in p for p in found), found
    assert any("default-deny" in p for p in found), found
