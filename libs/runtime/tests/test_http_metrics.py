"""Every service's /metrics: HTTP requests by route template, method and status (refused,
unmatched and failed ones included), process and GC figures, all passing promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse

from seoblog_runtime import add_ops_routes
from seoblog_telemetry import register_process_collectors


async def _ok() -> bool:
    return True


class RefuseLarge:
    """A pure ASGI middleware that answers 413 before routing, as the gateway's body limit."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] == "/v1/jobs/too-large":
            await PlainTextResponse("too large", status_code=413)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _app() -> tuple[FastAPI, CollectorRegistry]:
    registry = CollectorRegistry()
    register_process_collectors(registry)
    app = FastAPI()

    @app.get("/v1/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, str]:
        if job_id == "missing":
            raise HTTPException(404)
        return {"id": job_id}

    @app.post("/v1/jobs")
    async def submit() -> dict[str, str]:
        return {}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    add_ops_routes(app, registry, {"postgres": _ok})
    app.add_middleware(RefuseLarge)  # added after the ops routes: still inside the counting
    return app, registry


def _samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                found[(s.labels["method"], s.labels["route"], s.labels["status"])] = s.value
    return found


async def test_requests_are_counted_by_route_template_method_and_status() -> None:
    app, _ = _app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for job_id in ("a", "b", "c", "missing"):
            await client.get(f"/v1/jobs/{job_id}")
        await client.post("/v1/jobs")
        await client.delete("/v1/jobs")  # no DELETE route: 405 on the matched template
        for path in ("/no/such/page", "/wp-admin.php", "/another"):
            await client.get(path)
        await client.get("/v1/jobs/too-large")  # refused by a middleware before routing
        await client.get("/boom")
        await client.get("/healthz")
        text = (await client.get("/metrics")).text

    counts = _samples(text, "seoblog_http_requests_total")
    assert counts[("GET", "/v1/jobs/{job_id}", "200")] == 3  # one series, not one per id
    assert counts[("GET", "/v1/jobs/{job_id}", "404")] == 1
    assert counts[("POST", "/v1/jobs", "200")] == 1
    assert counts[("DELETE", "/v1/jobs", "405")] == 1
    assert counts[("GET", "unmatched", "404")] == 3  # raw paths never become labels
    assert counts[("GET", "unmatched", "413")] == 1
    assert counts[("GET", "/boom", "500")] == 1
    assert counts[("GET", "/healthz", "200")] == 1
    durations = _samples(text, "seoblog_http_request_duration_seconds_count")
    assert durations[("GET", "/v1/jobs/{job_id}", "200")] == 3


async def test_metrics_carry_process_and_gc_figures_and_pass_promtool() -> None:
    app, _ = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/v1/jobs/a")
        text = (await client.get("/metrics")).text

    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info"} <= names
    assert "python_gc_collections" in names
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make promtool` installs it")
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
