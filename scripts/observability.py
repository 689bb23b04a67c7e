"""Builds the observability artefacts from one source each: the Grafana dashboard (panels
below), and for Kubernetes the PrometheusRule (from observability/prometheus/alerts.yml) and the
dashboard ConfigMap. `make observability` rewrites them; tests/test_observability.py fails
when they fall behind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "observability" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "observability" / "grafana" / "dashboards" / "seoblog.json"
K8S = ROOT / "k8s" / "observability"

PROM = {"type": "prometheus", "uid": "${datasource}"}
R = "[$__rate_interval]"


def _panel(
    pid: int, title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int, **extra: Any
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": PROM,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": PROM}
            for i, (expr, legend) in enumerate(targets)
        ],
    } | extra


def _quantiles(span_filter: str) -> list[tuple[str, str]]:
    return [
        (
            f"histogram_quantile({q}, sum by (le, span) "
            f"(rate(seoblog_pipeline_latency_seconds_bucket{{{span_filter}}}[$__rate_interval])))",
            f"{{{{span}}}} p{int(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def dashboard() -> dict[str, Any]:
    panels = [
        _panel(
            1,
            "Throughput: jobs finished per minute",
            [
                (
                    "sum by (state) (rate(seoblog_jobs_finished_total[$__rate_interval])) * 60",
                    "{{state}}",
                )
            ],
            "short",
            0,
            0,
        ),
        _panel(
            2,
            "Jobs in each state",
            [("sum by (state) (seoblog_jobs)", "{{state}}")],
            "short",
            12,
            0,
        ),
        _panel(3, "End-to-end latency", _quantiles('span="end_to_end"'), "s", 0, 8),
        _panel(
            4, "Stage latency", _quantiles('span=~"queue|crawl|translate|generate"'), "s", 12, 8
        ),
        _panel(
            5,
            "Failures by stage and code (per minute)",
            [
                (
                    f"sum by (stage, code) (rate(seoblog_job_failures_total{R})) * 60",
                    "{{stage}} {{code}}",
                )
            ],
            "short",
            0,
            16,
        ),
        _panel(
            6,
            "Consumer lag",
            [
                ("max by (consumer) (seoblog_consumer_pending)", "{{consumer}} pending"),
                ("max by (consumer) (seoblog_consumer_ack_pending)", "{{consumer}} in flight"),
            ],
            "short",
            12,
            16,
        ),
        _panel(
            7,
            "LLM tokens per minute",
            [
                (
                    f"sum by (service, kind) (rate(seoblog_llm_tokens_total{R})) * 60",
                    "{{service}} {{kind}}",
                )
            ],
            "short",
            0,
            24,
        ),
        _panel(
            8,
            "LLM cost per hour (USD)",
            [
                (
                    "sum by (service) (rate(seoblog_llm_cost_usd_total[$__rate_interval])) * 3600",
                    "{{service}}",
                )
            ],
            "currencyUSD",
            12,
            24,
        ),
        _panel(
            9,
            "Cache hit rate",
            [
                (
                    'sum by (service) (rate(seoblog_cache_lookups_total{result=~"hit.*"}'
                    "[$__rate_interval])) / clamp_min(sum by (service) "
                    "(rate(seoblog_cache_lookups_total[$__rate_interval])), 1e-9)",
                    "{{service}}",
                )
            ],
            "percentunit",
            0,
            32,
        ),
        _panel(
            10,
            "Memory (resident)",
            [("max by (job, instance) (process_resident_memory_bytes)", "{{job}} {{instance}}")],
            "bytes",
            12,
            32,
        ),
        _panel(
            11,
            "LLM circuit breaker (0 closed, 1 open, 2 half-open)",
            [("max by (service) (seoblog_llm_breaker_state)", "{{service}}")],
            "short",
            0,
            40,
        ),
        _panel(
            12,
            "HTTP requests by route and status (per second)",
            [
                (
                    f"sum by (job, route, status) (rate(seoblog_http_requests_total{R}))",
                    "{{job}} {{route}} {{status}}",
                )
            ],
            "reqps",
            12,
            40,
        ),
        _panel(
            13,
            "HTTP latency p95 by route",
            [
                (
                    "histogram_quantile(0.95, sum by (le, job, route) "
                    f"(rate(seoblog_http_request_duration_seconds_bucket{R})))",
                    "{{job}} {{route}}",
                )
            ],
            "s",
            0,
            48,
        ),
        _panel(
            14,
            "LLM call latency p50/p95 (retries and waits included)",
            [
                (
                    f"histogram_quantile({q}, sum by (le, service) "
                    f"(rate(seoblog_llm_call_duration_seconds_bucket{R})))",
                    f"{{{{service}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            "s",
            12,
            48,
        ),
    ]
    return {
        "uid": "seoblog-overview",
        "title": "seoblog",
        "description": "Throughput, latency, failures, lag, LLM spend, cache and memory.",
        "tags": ["seoblog"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def _dump(doc: Any) -> str:
    return str(yaml.safe_dump(doc, sort_keys=False, width=100))


def prometheus_rule() -> str:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "seoblog",
            "namespace": "seoblog",
            "labels": {"app.kubernetes.io/part-of": "seoblog", "release": "prometheus"},
        },
        "spec": {"groups": groups},
    }
    return (
        "# Generated from observability/prometheus/alerts.yml by scripts/observability.py.\n"
        + _dump(doc)
    )


def dashboard_configmap() -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "seoblog-grafana-dashboard",
            "namespace": "seoblog",
            # Grafana's dashboard sidecar (kube-prometheus-stack) loads ConfigMaps with this label.
            "labels": {"app.kubernetes.io/part-of": "seoblog", "grafana_dashboard": "1"},
        },
        "data": {"seoblog.json": json.dumps(dashboard(), indent=2) + "\n"},
    }
    return (
        "# Generated from scripts/observability.py (the same dashboard as compose's Grafana).\n"
        + _dump(doc)
    )


def outputs() -> dict[Path, str]:
    return {
        DASHBOARD: json.dumps(dashboard(), indent=2) + "\n",
        K8S / "prometheusrule.yaml": prometheus_rule(),
        K8S / "grafana-dashboard.yaml": dashboard_configmap(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    args = parser.parse_args()
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        raise SystemExit(f"stale: {', '.join(stale)}; run make observability")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
