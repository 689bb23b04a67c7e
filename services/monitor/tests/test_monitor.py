from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client.parser import text_string_to_metric_families

from monitor.alert_rules import HIGH_FAILURE_RATE
from monitor.app import create_app
from monitor.settings import Settings
from seoblog_contracts import (
    AlertFired,
    Event,
    JobFailed,
    JobProgress,
    JobSpec,
    JobSubmitted,
    PostGenerated,
    SeoReport,
    Stage,
    utcnow,
)
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, signed_headers, wait_until

CONSUMER = "monitor-observe_event"


def approx(value: float) -> Any:
    return pytest.approx(value, rel=0.01)


def monitor_settings(service_env: dict[str, str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {"evaluate_every_s": 0.1, "alert_min_jobs": 1000} | overrides
    return settings_for(Settings, service_env, port=0, **values)


@asynccontextmanager
async def running_monitor(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://monitor") as client,
    ):
        yield app, client


@asynccontextmanager
async def probe_bus(service_env: dict[str, str]) -> AsyncIterator[Bus]:
    bus = Bus(settings_for(ServiceSettings, service_env, service="probe"))
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


def submitted(job_id: str, at: datetime) -> JobSubmitted:
    return JobSubmitted(job_id=job_id, occurred_at=at, spec=JobSpec(url="https://example.com/a"))


def progress(job_id: str, stage: Stage, at: datetime, percent: int = 0) -> JobProgress:
    return JobProgress(job_id=job_id, stage=stage, percent=percent, occurred_at=at)


def generated(job_id: str, at: datetime) -> PostGenerated:
    return PostGenerated(
        job_id=job_id,
        occurred_at=at,
        post_id=f"post-{job_id}",
        source_url="https://example.com/a",
        language="en",
        title="A post",
        slug="a-post",
        meta_description="About a post.",
        markdown="# A post",
        html="<h1>A post</h1>",
        keywords=["post"],
        seo=SeoReport(score=90),
        writer="offline",
    )


def failed(job_id: str, at: datetime, code: str = "not_found") -> JobFailed:
    return JobFailed(job_id=job_id, occurred_at=at, stage=Stage.CRAWL, code=code, message="404")


def sample(metrics_text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


async def summary_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/summary")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def settled(client: httpx.AsyncClient, jobs: dict[str, int]) -> dict[str, Any] | None:
    """The summary once the monitor has acked everything and counts `jobs`, else None."""
    body = await summary_of(client)
    lag = body["consumers"].get(CONSUMER)
    if lag == {"num_pending": 0, "num_ack_pending": 0} and all(
        body["jobs"][state] == n for state, n in jobs.items()
    ):
        return body
    return None


async def publish_all(bus: Bus, events: list[Event]) -> None:
    for event in events:
        await bus.publish(event)


async def test_monitor_summarises_a_job_life_and_a_failure_counting_a_redelivery_once(
    service_env, nats_client
):
    settings = monitor_settings(service_env)
    t0 = utcnow() - timedelta(minutes=5)  # windows count whole minutes

    def t(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    async with running_monitor(settings) as (_, client), probe_bus(service_env) as bus:
        # A consumer that never pulls: its backlog must show as lag.
        js = nats_client.jetstream()
        await js.add_consumer(
            bus.subjects.stream,
            ConsumerConfig(
                durable_name="probe-idle",
                ack_policy=AckPolicy.EXPLICIT,
                filter_subject=bus.subjects.of(JobFailed),
            ),
        )
        crawl = progress("job-a", Stage.CRAWL, t(1))
        await publish_all(
            bus,
            [
                submitted("job-a", t(0)),
                crawl,
                progress("job-a", Stage.CRAWL, t(2), percent=100),  # same state, counted once
                progress("job-a", Stage.TRANSLATE, t(3)),
                progress("job-a", Stage.GENERATE, t(6)),
                generated("job-a", t(10)),
                submitted("job-b", t(0)),
                progress("job-b", Stage.CRAWL, t(0.5)),
                failed("job-b", t(1)),
            ],
        )
        await bus.publish(crawl)  # a duplicate publish: JetStream drops it
        # A redelivery the duplicate window cannot catch: same event, another message id.
        body = crawl.model_dump_json().encode()
        await js.publish(
            bus.subjects.of(crawl),
            body,
            headers=signed_headers(body, msg_id=f"again-{crawl.event_id}"),
            stream=bus.subjects.stream,
        )

        body = await wait_until(lambda: settled(client, {"completed": 1, "failed": 1}))
        assert body["jobs"] == {
            "queued": 0,
            "crawling": 0,
            "translating": 0,
            "generating": 0,
            "completed": 1,
            "failed": 1,
            "cancelled": 0,
        }
        latency = body["latency_s"]
        # Quantiles come from sketches with 1 % relative error.
        assert latency["crawl"] == {"p50": approx(2.0), "p95": approx(2.0), "count": 1}
        assert latency["translate"] == {"p50": approx(3.0), "p95": approx(3.0), "count": 1}
        assert latency["generate"] == {"p50": approx(4.0), "p95": approx(4.0), "count": 1}
        assert latency["end_to_end"] == {"p50": approx(10.0), "p95": approx(10.0), "count": 1}
        assert latency["queue"]["count"] == 2
        assert latency["queue"]["p50"] == approx(0.75)
        assert body["failures"] == {"crawl:not_found": 1}
        assert body["alerts"] == []
        assert body["consumers"]["probe-idle"] == {"num_pending": 1, "num_ack_pending": 0}
        recent = (await client.get("/v1/summary", params={"window_s": 60})).json()
        assert recent["latency_s"]["crawl"] == {"p50": None, "p95": None, "count": 0}
        assert recent["failures"] == {}

        text = (await client.get("/metrics")).text
        assert sample(text, "seoblog_events_observed_total", type="job.progress") == 5
        assert sample(text, "seoblog_events_observed_total", type="job.submitted") == 2
        assert sample(text, "seoblog_pipeline_latency_seconds_count", span="crawl") == 1
        assert sample(text, "seoblog_pipeline_latency_seconds_sum", span="end_to_end") == 10
        assert sample(text, "seoblog_pipeline_latency_seconds_count", span="queue") == 2
        assert sample(text, "seoblog_jobs_finished_total", state="completed") == 1
        assert sample(text, "seoblog_jobs_finished_total", state="failed") == 1
        assert sample(text, "seoblog_job_failures_total", stage="crawl", code="not_found") == 1
        assert sample(text, "seoblog_jobs", state="completed") == 1
        assert sample(text, "seoblog_consumer_pending", consumer="probe-idle") == 1
        assert sample(text, "seoblog_consumer_pending", consumer=CONSUMER) == 0
        assert sample(text, "seoblog_consumer_ack_pending", consumer=CONSUMER) == 0

    # Another process (a restart, or a replica) serves the same figures from the store.
    async with running_monitor(settings) as (_, client):
        again = await summary_of(client)
        for key in ("jobs", "latency_s", "failures", "alerts"):
            assert again[key] == body[key]


async def test_monitor_fires_a_failure_rate_alert_once_then_resolves_it(service_env, events):
    settings = monitor_settings(
        service_env, alert_min_jobs=3, failure_rate_threshold=0.5, alert_window_s=120
    )
    now = utcnow()
    async with running_monitor(settings) as (app, client), probe_bus(service_env) as bus:
        for i in range(3):
            await publish_all(bus, [submitted(f"bad-{i}", now), failed(f"bad-{i}", now)])

        await wait_until(lambda: events.of("alert.fired"))
        fired = AlertFired.model_validate(events.of("alert.fired")[0].data)
        assert (fired.alert, fired.severity, fired.value) == (HIGH_FAILURE_RATE, "critical", 1.0)
        assert fired.summary == "3 of 3 jobs finished in the last 120 s failed (100%)"
        active = (await summary_of(client))["alerts"]
        assert [(a["alert"], a["value"]) for a in active] == [(HIGH_FAILURE_RATE, 1.0)]

        for i in range(4):
            await publish_all(bus, [submitted(f"good-{i}", now), generated(f"good-{i}", now)])

        await wait_until(lambda: events.of("alert.resolved"))
        resolved = events.of("alert.resolved")[0].data
        assert resolved["alert"] == HIGH_FAILURE_RATE
        assert "3 of 7 jobs" in resolved["summary"]
        assert len(events.of("alert.fired")) == 1
        assert (await summary_of(client))["alerts"] == []
        history = await app.state.parts.store.alert_history(HIGH_FAILURE_RATE)
        assert len(history) == 1
        assert history[0]["resolved_at"] is not None
        text = (await client.get("/metrics")).text
        assert sample(text, "seoblog_alert_active", alert=HIGH_FAILURE_RATE) == 0
        # The monitor observes its own alerts like any other event.
        await wait_until(lambda: _observed(client, "alert.resolved"))


async def _observed(client: httpx.AsyncClient, event_type: str) -> bool:
    text = (await client.get("/metrics")).text
    return sample(text, "seoblog_events_observed_total", type=event_type) == 1
