"""The live page in headless Chromium (Debian's, driven by playwright, as the gateway's page is
tested): real jobs' events on the real bus through a real monitor behind uvicorn; the charts
must draw exactly those jobs, update live over server-sent events, fit a phone and work by
keyboard. SEOBLOG_SCREENSHOTS=docs/screenshots keeps the screenshots (monitor.png)."""

from __future__ import annotations

import asyncio
import math
import os
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from nats.js.api import AckPolicy, ConsumerConfig
from playwright.async_api import Browser, Page, async_playwright, expect

from monitor.app import create_app
from monitor.pipeline import minute_of
from monitor.settings import Settings
from seoblog_contracts import JobCancelled, JobFailed, JobProgress, Stage, utcnow
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, wait_until
from seoblog_testing.processes import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MONITOR = "monitor-observe_event"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the browser starts
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium")
    async with async_playwright() as playwright:
        found = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield found
        await found.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    wanted = os.environ.get("SEOBLOG_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Any, str]]:
    """The monitor behind uvicorn on a loopback port, in this event loop."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout_s=30)
        assert server.started, "uvicorn did not start"
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


class Jobs:
    """Real jobs' lives as the services publish them, and what the charts must show."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.events: list[Any] = []
        self.outcomes: Counter[tuple[datetime, str]] = Counter()
        self.e2e: defaultdict[datetime, list[float]] = defaultdict(list)
        self.cost: Counter[datetime] = Counter()
        self.failures: Counter[str] = Counter()

    def history(self, now: datetime) -> Jobs:
        """The last ten minutes of a small site: completed, failed, cancelled and stuck jobs."""
        make = self.make
        # Ten jobs that complete, over the last nine minutes, each slower than the one before.
        for i in range(10):
            start = now - timedelta(seconds=(9 - i) * 55 + 40)
            self.complete(f"ok-{i}", start, 6 + 3 * i, cost_usd=0.01 * (i + 1))
        self.fail("gone-1", now - timedelta(minutes=7), Stage.CRAWL, "not_found")
        self.fail("gone-2", now - timedelta(minutes=3), Stage.CRAWL, "not_found")
        self.fail("llm-1", now - timedelta(minutes=2), Stage.TRANSLATE, "llm_unavailable")
        self.events += [
            make.submitted_at("changed-mind", now - timedelta(minutes=4)),
            JobCancelled(job_id="changed-mind", occurred_at=now - timedelta(minutes=4)),
        ]
        self.outcomes[(minute_of(now - timedelta(minutes=4)), "cancelled")] += 1
        # A job that has waited an hour at the crawler: jobs_stuck fires for it.
        self.events.append(make.submitted_at("stuck", now - timedelta(hours=1)))
        return self

    def complete(self, job_id: str, start: datetime, seconds: float, cost_usd: float) -> None:
        end = start + timedelta(seconds=seconds)
        at = lambda f: start + timedelta(seconds=seconds * f)  # noqa: E731
        self.events += [
            self.make.submitted_at(job_id, start),
            JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=0, occurred_at=at(0.1)),
            JobProgress(job_id=job_id, stage=Stage.TRANSLATE, percent=0, occurred_at=at(0.3)),
            self.make.translated_at(job_id, at(0.5), cost_usd=cost_usd / 4),
            JobProgress(job_id=job_id, stage=Stage.GENERATE, percent=0, occurred_at=at(0.6)),
            self.make.generated_at(job_id, end, cost_usd=cost_usd),
        ]
        self.outcomes[(minute_of(end), "completed")] += 1
        self.e2e[minute_of(end)].append(seconds)
        # The whole job's cost counts once, in the minute of each part's report.
        self.cost[minute_of(at(0.5))] += cost_usd / 4
        self.cost[minute_of(end)] += cost_usd - cost_usd / 4

    def fail(self, job_id: str, at: datetime, stage: Stage, code: str) -> None:
        self.events += [
            self.make.submitted_at(job_id, at - timedelta(seconds=2)),
            JobFailed(job_id=job_id, occurred_at=at, stage=stage, code=code, message="no"),
        ]
        self.outcomes[(minute_of(at), "failed")] += 1
        self.failures[f"{stage}:{code}"] += 1


async def chart(page: Page, name: str) -> dict[str, Any]:
    """What a chart on the page draws: its labels and each dataset's label and data."""
    found: dict[str, Any] = await page.evaluate(
        """(id) => {
            const c = Chart.getChart(id);
            return {labels: c.data.labels,
                    datasets: c.data.datasets.map(d => ({label: d.label, data: d.data}))};
        }""",
        name,
    )
    return found


async def test_the_live_page_charts_real_jobs_and_updates_over_server_sent_events(
    service_env, nats_client, make, browser, shots
):
    settings = settings_for(
        Settings,
        service_env,
        port=0,
        evaluate_every_s=0.5,
        dashboard_push_s=0.5,
        stuck_after_s=1800,
        alert_min_jobs=1000,
    )
    now = utcnow()
    jobs = Jobs(make).history(now)
    probe = Bus(settings_for(ServiceSettings, service_env, service="probe"))
    await probe.start()
    # A consumer that never pulls failures: its backlog is the lag chart's data.
    await nats_client.jetstream().add_consumer(
        probe.subjects.stream,
        ConsumerConfig(
            durable_name="probe-idle",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=probe.subjects.of(
                JobFailed(job_id="x", stage="crawl", code="c", message="")
            ),
        ),
    )
    try:
        async with served(settings) as (app, url):
            for event in jobs.events:
                await probe.publish(event)

            async def settled() -> bool:
                lag = (await app.state.evaluator.consumer_lag()).get(MONITOR)
                body = (await app.state.dashboard._build()).model_dump()
                return (
                    lag is not None
                    and (lag.num_pending, lag.num_ack_pending) == (0, 0)
                    and body["jobs"]["completed"] == 10
                    and [a["alert"] for a in body["alerts"]] == ["jobs_stuck"]
                )

            await wait_until(settled, timeout_s=20, interval_s=0.2)

            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(url + "/")
            await expect(page.locator("#status")).to_have_text("live", timeout=10_000)
            await expect(page.locator('dd[data-state="completed"]')).to_have_text("10")
            await expect(page.locator('#alerts li[data-alert="jobs_stuck"]')).to_contain_text(
                "stuck"
            )

            snap: dict[str, Any] = await page.evaluate("window.__dashboard")
            minutes = [datetime.fromisoformat(m.replace("Z", "+00:00")) for m in snap["minutes"]]
            assert len(minutes) == 60
            generated = datetime.fromisoformat(snap["generated_at"].replace("Z", "+00:00"))
            assert generated >= now
            assert minutes[-1] == minute_of(generated)

            throughput = await chart(page, "throughput")
            assert len(throughput["labels"]) == 60
            drawn = {d["label"]: d["data"] for d in throughput["datasets"]}
            for outcome in ("completed", "failed", "cancelled"):
                assert drawn[outcome] == [jobs.outcomes[(m, outcome)] for m in minutes], outcome
            assert (sum(drawn["completed"]), sum(drawn["failed"]), sum(drawn["cancelled"])) == (
                10,
                3,
                1,
            )

            latency = await chart(page, "latency")
            lines = {d["label"]: d["data"] for d in latency["datasets"]}
            for q in (0.5, 0.95):
                expected = [
                    percentile_cont(jobs.e2e[m], q) if jobs.e2e.get(m) else None for m in minutes
                ]
                got = lines[f"end_to_end p{round(q * 100)}"]
                assert [v is None for v in got] == [v is None for v in expected]
                for value, want in zip(got, expected, strict=True):
                    if want is not None:
                        assert value == pytest.approx(want, rel=0.02)
            assert {"queue p50", "crawl p95", "translate p95", "generate p95"} <= set(lines)

            failures = await chart(page, "failures")
            assert dict(
                zip(failures["labels"], failures["datasets"][0]["data"], strict=True)
            ) == dict(jobs.failures)

            lag = await chart(page, "lag")
            consumers = {d["label"]: d["data"] for d in lag["datasets"]}
            assert consumers["probe-idle"][-1] == 3  # the three failures, never pulled
            assert consumers[MONITOR][-1] == 0

            cost = await chart(page, "cost")
            for value, m in zip(cost["datasets"][0]["data"], minutes, strict=True):
                assert value == pytest.approx(jobs.cost[m], abs=1e-6)
            assert sum(cost["datasets"][0]["data"]) == pytest.approx(0.55)
            await expect(page.locator("#cost-window")).to_contain_text("0.55 USD in the last 1 h")

            await page.screenshot(path=shots / "monitor.png", full_page=True)

            # Live: a job finishing now reaches the open page over the stream.
            extra = Jobs(make)
            extra.complete("late", utcnow() - timedelta(seconds=5), 4, cost_usd=0.05)
            for event in extra.events:
                await probe.publish(event)
            await expect(page.locator('dd[data-state="completed"]')).to_have_text(
                "11", timeout=10_000
            )
            live = await chart(page, "throughput")
            assert sum(next(d["data"] for d in live["datasets"] if d["label"] == "completed")) == 11

            # The keyboard: the skip link, then the pause button, which holds the charts.
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.className") == "skip"
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.id") == "pause"
            await page.keyboard.press("Enter")
            await expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
            await expect(page.locator("#status")).to_have_text("paused")
            await page.keyboard.press("Enter")
            await expect(page.locator("#pause")).to_have_attribute("aria-pressed", "false")

            # A phone: one column, nothing wider than the screen.
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.wait_for_timeout(300)
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            box = await page.locator("#latency").bounding_box()
            assert box is not None
            assert box["width"] <= 390
            await page.screenshot(path=shots / "monitor-phone.png", full_page=True)
            assert problems == []
            await page.close()
    finally:
        await probe.stop()


async def test_the_page_and_its_assets_are_served_with_a_strict_csp_and_no_outside_asset(
    start_monitor,
):
    async with start_monitor() as (_, client):
        page = await client.get("/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script
        assert "http://" not in page.text.replace('href="/', "")
        assert "https://" not in page.text
        for asset in ("dashboard.js", "dashboard.css", "chart.umd.min.js"):
            served = await client.get(f"/static/{asset}")
            assert served.status_code == 200, asset
        assert (await client.get("/static/..%2Fsettings.py")).status_code == 404
        assert (await client.get("/dashboard")).text == page.text
        spec = (await client.get("/openapi.json")).json()
        assert {"/v1/dashboard", "/v1/dashboard/stream", "/v1/summary"} <= set(spec["paths"])
        stream = spec["paths"]["/v1/dashboard/stream"]["get"]["responses"]["200"]["content"]
        assert "text/event-stream" in stream


async def test_the_stream_pushes_snapshots_as_server_sent_events(start_monitor, make, service_env):
    async with start_monitor(dashboard_push_s=0.2) as (app, _):
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
        )
        task = asyncio.create_task(server.serve())
        try:
            await wait_until(lambda: server.started)
            snapshots = []
            async with (
                httpx.AsyncClient(timeout=10) as client,
                client.stream("GET", f"http://127.0.0.1:{port}/v1/dashboard/stream") as response,
            ):
                assert response.headers["content-type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        snapshots.append(line)
                    if len(snapshots) == 2:
                        await app.state.dashboard.stop()  # the server is stopping
                assert len(snapshots) == 2  # the stream ended with the server
            assert all('"throughput"' in s for s in snapshots)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)
