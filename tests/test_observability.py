"""Alert rules pass promtool's checks and unit tests; the Kubernetes PrometheusRule and the
dashboard ConfigMap are what their sources generate. Against the live system: a job's trace
names each step, every service exports the metrics the README lists, idle services trace
nothing."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from seoblog_testing import drop_namespace, env_for, unique_name, wait_until
from seoblog_testing.fake_llm import default_responder
from seoblog_testing.processes import Stack, running_stack

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "observability" / "prometheus"


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make promtool` installs Debian's prometheus package"
    return subprocess.run(
        [promtool, *args],
        cwd=RULES,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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


# -- live system: a job's trace, the metrics every service exports, quiet when idle

SPAN_CLIENT, SPAN_CONSUMER = 3, 5  # OTLP span kinds
CRAWL_SPANS = {
    "crawl slot",
    "stored page",
    "fetch",
    "robots",
    "host wait",
    "extract",
    "store page",  # the page saved, its duplicates found and the job's crawl recorded at once
}  # ("store crawl" is a cache hit's: the job reuses a page another job stored)
TRANSLATE_SPANS = {"detect language", "translate", "translate segment", "store translation"}
GENERATE_SPANS = {"write post", "seo score", "revise", "render", "store post"}
LLM_SPAN = "chat fake-model"
ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # NASA, Europa


def post_writer(request: dict[str, Any]) -> str:
    """The post JSON for the generator's structured calls; the default answer otherwise."""
    if (request.get("response_format") or {}).get("type") != "json_schema":
        return default_responder(request)
    return json.dumps(
        {
            "title": "Water plumes on Europa: what NASA found",
            "slug": "water-plumes-europa",
            "meta_description": "Water plumes on Europa: how NASA saw the vapour and what it "
            "says about the ocean under the ice.",
            "outline": ["What NASA saw"],
            "markdown": "Water plumes rise above Europa.\n\n## What NASA saw\n\nVapour.",
            "faq": [],
            "key_takeaways": ["Plumes were detected"],
        }
    )


async def run_job(client: httpx.AsyncClient, stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    submitted = await client.post(f"{stack.gateway}/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]

    async def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"{stack.gateway}/v1/jobs/{job_id}")).json()
        return job if job["state"] in {"completed", "failed", "cancelled"} else None

    try:
        return await wait_until(finished, timeout_s=60, interval_s=0.2)
    except AssertionError:
        pytest.fail(f"job did not finish\n{stack.logs()}")


@pytest.fixture(scope="module")
def traced_stack(infra, fake_llm, otlp_collector) -> Iterator[tuple[Stack, str]]:
    ns = unique_name()
    env = env_for(infra, ns) | {
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-model",
        "GENERATOR_REVISE_BELOW": "101",  # every post is revised: the revision is traced too
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # The collector is shared by the session: this stack's spans say they are its own.
        "OTEL_RESOURCE_ATTRIBUTES": f"seoblog.test.stack={ns}",
    }
    with running_stack(env) as stack:
        yield stack, ns
    asyncio.run(drop_namespace(infra, ns))


def _of_stack(spans: list[dict[str, Any]], ns: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["resource"].get("seoblog.test.stack") == ns]


def _covered(parent: dict[str, Any], children: list[dict[str, Any]]) -> float:
    """The share of the parent's time that its children's (merged) intervals cover."""
    start, end = parent["start_ns"], parent["end_ns"]
    intervals = sorted((max(c["start_ns"], start), min(c["end_ns"], end)) for c in children)
    covered, reach = 0, start
    for lo, hi in intervals:
        lo = max(lo, reach)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered / max(end - start, 1)


@pytest.mark.slow
async def test_a_jobs_trace_says_where_its_time_went(
    traced_stack, fixture_site, fake_llm, otlp_collector
) -> None:
    stack, _ = traced_stack
    fake_llm.responder = post_writer
    async with httpx.AsyncClient(timeout=10) as client:
        job = await run_job(
            client,
            stack,
            {
                "url": fixture_site.article_url(ARTICLE),
                "keywords": ["water plumes", "Europa"],
                "target_language": "ko",
                "length": 600,
            },
        )
    assert job["state"] == "completed", (job, stack.logs())
    trace_id, job_id = job["trace_id"], job["id"]
    wanted = CRAWL_SPANS | TRANSLATE_SPANS | GENERATE_SPANS | {LLM_SPAN}

    def names() -> set[str]:
        return {s["name"] for s in otlp_collector.spans_for_trace(trace_id)}

    try:
        await otlp_collector.wait_for_async(lambda _: wanted <= names(), timeout_s=20)
    except TimeoutError:
        pytest.fail(f"missing spans: {sorted(wanted - names())}\n{stack.logs()}")
    await asyncio.sleep(1.0)  # the consumer spans end after their children: let them arrive
    spans = otlp_collector.spans_for_trace(trace_id)
    by_id = {s["span_id"]: s for s in spans}

    for s in spans:
        if s["name"] in wanted:  # named steps hang off the job's trace, carrying the job id
            assert s["parent_span_id"] in by_id, s["name"]
            assert s["attributes"].get("seoblog.job_id") == job_id, s["name"]
    for s in spans:  # every worker span of the job says which job it was for
        if s["service"] in {"crawler", "translator", "generator"}:
            assert s["attributes"].get("seoblog.job_id") == job_id, (s["service"], s["name"])

    fetch = next(s for s in spans if s["name"] == "fetch")["attributes"]
    assert fetch["http.request.method"] == "GET"
    assert fetch["url.full"] == fixture_site.article_url(ARTICLE)
    assert fetch["server.address"] == "127.0.0.1"
    assert fetch["http.response.status_code"] == 200
    assert fetch["http.response.body.size"] > 1000
    assert fetch["seoblog.fetch.attempts"] == 1
    assert fetch["seoblog.fetch.redirects"] == 0

    llm_spans = [s for s in spans if s["name"] == LLM_SPAN]
    assert {s["service"] for s in llm_spans} == {"translator", "generator"}
    for s in llm_spans:
        a = s["attributes"]
        assert s["kind"] == SPAN_CLIENT
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.request.model"] == "fake-model"
        assert a["gen_ai.response.model"] == "fake-model"
        assert a["gen_ai.usage.input_tokens"] > 0
        assert a["gen_ai.usage.output_tokens"] > 0
        assert a["seoblog.llm.cost_usd"] > 0
        assert a["server.address"] == "127.0.0.1"
    purposes = {s["attributes"]["seoblog.llm.purpose"] for s in llm_spans}
    assert purposes == {"translate", "generate_post", "revise_post"}
    segments = [s for s in spans if s["name"] == "translate segment"]
    translate = next(s for s in spans if s["name"] == "translate")
    assert all(s["parent_span_id"] == translate["span_id"] for s in segments)
    assert any(by_id[s["parent_span_id"]]["name"] == "translate segment" for s in llm_spans)

    server = next(s for s in spans if s["service"] == "gateway" and s["name"] == "POST /v1/jobs")
    assert server["attributes"]["http.request.method"] == "POST"  # current HTTP conventions
    assert "http.method" not in server["attributes"]

    consumer = next(s for s in spans if s["service"] == "crawler" and s["kind"] == SPAN_CONSUMER)
    # The crawler's own steps: the consumers its events start elsewhere are not its time.
    children = [
        s for s in spans if s["parent_span_id"] == consumer["span_id"] and s["service"] == "crawler"
    ]
    share = _covered(consumer, children)
    took_ms = (consumer["end_ns"] - consumer["start_ns"]) / 1e6
    assert share >= 0.8, (
        f"the crawl's children cover {share:.0%} of its {took_ms:.0f} ms: "
        + ", ".join(f"{c['name']} {(c['end_ns'] - c['start_ns']) / 1e6:.0f} ms" for c in children)
    )


@pytest.mark.slow
async def test_idle_services_and_their_health_readiness_and_metrics_make_no_spans(
    traced_stack, otlp_collector
) -> None:
    stack, ns = traced_stack
    await asyncio.sleep(1.5)  # what earlier tests started has been exported
    before = {s["span_id"] for s in _of_stack(otlp_collector.spans(), ns)}
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(3):  # idle for a few poll intervals, probed as Kubernetes would
            for svc in stack.services.values():
                for path in ("/healthz", "/readyz", "/metrics"):
                    assert (await client.get(f"{svc.url}{path}")).status_code == 200
            await asyncio.sleep(1.0)
    await asyncio.sleep(1.5)  # past the batch exporter's delay
    new = [s for s in _of_stack(otlp_collector.spans(), ns) if s["span_id"] not in before]
    assert not new, sorted({f"{s['service']}: {s['name']}" for s in new})


def _readme_metrics() -> dict[str, tuple[str, set[str]]]:
    """The metrics table of the README's Observability section: name -> (type, services)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Observability\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_:]+)` \| (\w+) \| [^|]* \| ([a-z, ]+) \|", section, re.M)
    assert rows, "README ## Observability has no metrics table"
    everyone = {"crawler", "translator", "generator", "gateway", "monitor"}
    return {
        name: (kind, everyone if where.strip() == "all" else {w.strip() for w in where.split(",")})
        for name, kind, where in rows
    }


def _exposed(text: str) -> dict[str, str]:
    """Metric name (counters with `_total`, as queried) -> type."""
    return {
        f.name + "_total" if f.type == "counter" else f.name: f.type
        for f in text_string_to_metric_families(text)
    }


@pytest.mark.slow
async def test_every_service_exports_exactly_the_metrics_the_readme_lists_and_promtool_agrees(
    traced_stack,
) -> None:
    stack, _ = traced_stack
    listed = _readme_metrics()
    async with httpx.AsyncClient(timeout=5) as client:
        for name, svc in stack.services.items():
            await client.get(f"{svc.url}/no/such/path")  # a request to count, at least
            text = (await client.get(f"{svc.url}/metrics")).text
            exposed = _exposed(text)
            expected = {m: kind for m, (kind, where) in listed.items() if name in where}
            wrong = [(m, t, expected[m]) for m, t in exposed.items() if expected.get(m, t) != t]
            assert exposed == expected, (
                f"{name}: not in the README: {sorted(set(exposed) - set(expected))}; "
                f"listed but not exported: {sorted(set(expected) - set(exposed))}; "
                f"types (exposed, listed): {wrong}"
            )
            checked = await asyncio.to_thread(_promtool, "check", "metrics", stdin=text)
            assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"
            families = {f.name: f for f in text_string_to_metric_families(text)}
            requests = families["seoblog_http_requests"].samples
            assert any(s.labels.get("route") == "unmatched" for s in requests), name
            assert families["process_resident_memory_bytes"].samples[0].value > 0


def _referenced(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:seoblog|crawler|process|python)_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_the_dashboard_and_the_alert_rules_query_only_metrics_the_services_export() -> None:
    listed = set(_readme_metrics())
    dashboard = json.loads((ROOT / "observability/grafana/dashboards/seoblog.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    unknown = set().union(*map(_referenced, exprs)) - listed
    assert not unknown, f"queried but exported by no service: {sorted(unknown)}"


@pytest.mark.parametrize("service", ["translator", "generator"])
async def test_llm_metrics_are_exported_at_zero_when_no_llm_is_configured(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    app_module = importlib.import_module(f"{service}.app")
    settings_module = importlib.import_module(f"{service}.settings")
    settings = settings_module.Settings(llm_base_url="", llm_api_key=None)
    assert not settings.llm_configured
    app = app_module.create_app(settings)
    transport = httpx.ASGITransport(app=app)  # no lifespan: nothing connects
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("seoblog_llm_calls", "seoblog_llm_tokens", "seoblog_llm_cost_usd"):
        samples = families[name].samples
        assert samples, name
        assert all(s.value == 0 for s in samples), name
    assert families["seoblog_llm_breaker_state"].samples[0].value == 0  # closed
    assert families["seoblog_llm_call_duration_seconds"].samples


def test_urls_on_fetch_spans_carry_no_credentials() -> None:
    from crawler.fetch import _traced

    assert _traced("https://user:secret@example.com:8443/a?b=1") == (
        "https://REDACTED:REDACTED@example.com:8443/a?b=1"
    )
    assert _traced("https://example.com/a") == "https://example.com/a"
