"""The monitor's side of experiments, on a real bus and store: it learns experiments from
seo.experiment.changed, folds each experiment job's figures from its events (a redelivered
post counts once), exports them by variant, rolls back on a breached guardrail (with an alert)
and advances a ramp step that held."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import create_app
from monitor.settings import Settings
from seoblog_contracts import (
    Assignment,
    ExperimentChanged,
    JobSpec,
    JobSubmitted,
    PostGenerated,
    SeoReport,
    Usage,
    new_event_id,
    stage_event_id,
    utcnow,
)
from seoblog_experiments import Experiment
from seoblog_testing import settings_for, wait_until
from seoblog_testing.processes import free_port


class Receiver:
    """A local endpoint standing in for an alert webhook receiver."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(json.loads(body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found, port = Receiver(), free_port()
    server = uvicorn.Server(
        uvicorn.Config(found, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started)
    yield found, f"http://127.0.0.1:{port}/alerts"
    server.should_exit = True
    await task


@pytest.fixture
async def monitor(service_env, receiver) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = settings_for(
        Settings,
        service_env,
        port=0,
        evaluate_every_s=60,
        alert_webhooks=[receiver[1]],
        alert_webhook_allowed_networks=["127.0.0.0/8"],  # the receiver is on loopback
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://monitor") as client,
    ):
        yield app, client


def watch_of(app: FastAPI) -> Any:
    return app.state.experiments


def defined(experiment: Experiment) -> ExperimentChanged:
    return ExperimentChanged(
        event_id=stage_event_id(experiment.id, "experiment.changed", experiment.version),
        experiment_id=experiment.id,
        status=experiment.status,
        version=experiment.version,
        definition=experiment.model_dump(mode="json"),
    )


async def run_jobs(bus: Any, experiment_id: str, variant: str, scores: list[int]) -> None:
    for score in scores:
        job_id = new_event_id()
        assignment = Assignment(experiment_id=experiment_id, variant=variant)
        spec = JobSpec(url="https://example.com/a", experiments=[assignment])
        await bus.publish(JobSubmitted(job_id=job_id, spec=spec))
        post = PostGenerated(
            event_id=stage_event_id(job_id, "post.generated"),
            job_id=job_id,
            post_id=stage_event_id(job_id, "post"),
            source_url="https://example.com/a",
            language="en",
            title="t",
            slug="t",
            meta_description="m",
            markdown="m",
            html="h",
            keywords=[],
            seo=SeoReport(score=score),
            writer="llm:x",
            usage=Usage(prompt_tokens=10, completion_tokens=5, calls=1, cost_usd=0.001),
            experiments=[assignment],
        )
        await bus.publish(post)
        await bus.publish(post)  # a redelivered post: counted once


async def test_a_breached_guardrail_publishes_a_rollback_and_an_alert(
    monitor, bus, events, receiver
):
    app, client = monitor
    experiment = Experiment.model_validate(
        {
            "id": "worse",
            "variants": [{"name": "v", "share": 50}],
            "guardrails": [{"metric": "seo_score", "min_difference": -5, "min_sample": 5}],
        }
    )
    await bus.publish(defined(experiment))
    watch = watch_of(app)
    await wait_until(lambda: _known(watch, "worse"))
    await run_jobs(bus, "worse", "control", [80, 81, 82, 80, 81])
    await run_jobs(bus, "worse", "v", [60, 61, 62, 60])
    await wait_until(lambda: _finished(watch, "worse", 9))
    await watch.evaluate()
    assert events.of("experiment.rolled_back") == []  # 4 variant jobs: below min_sample
    await run_jobs(bus, "worse", "v", [61])
    await wait_until(lambda: _finished(watch, "worse", 10))
    await watch.evaluate()
    rolled = await wait_until(lambda: events.of("experiment.rolled_back"))
    assert rolled[0].data["variant"] == "v"
    assert "seo_score" in rolled[0].data["reason"]
    breach = rolled[0].data["figures"]["breaches"][0]
    assert breach["control_n"] == 5
    assert breach["variant_n"] == 5
    alert = await wait_until(lambda: events.of("alert.fired"))
    assert alert[0].data["alert"] == "experiment_rolled_back"
    hooked = await wait_until(lambda: receiver[0].bodies)
    assert hooked[0]["alert"] == "experiment_rolled_back"
    await watch.evaluate()  # the same version is not rolled back twice
    assert len(events.of("experiment.rolled_back")) == 1
    # Resumed (a new version, running from now): judged on its new jobs only.
    resumed = experiment.model_copy(update={"version": 3, "started_at": utcnow()})
    await bus.publish(defined(resumed))
    await wait_until(lambda: _version(watch, "worse", 3))
    await watch.evaluate()
    assert len(events.of("experiment.rolled_back")) == 1

    text = (await client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    key = ("seoblog_experiment_jobs_total", (("experiment", "worse"), ("outcome", "completed"),
                                             ("variant", "v")))  # fmt: skip
    assert samples[key] == 5


async def test_a_step_that_held_ramps_the_experiment(monitor, bus, events):
    app, _ = monitor
    started = utcnow() - timedelta(seconds=5)
    experiment = Experiment.model_validate(
        {
            "id": "ramp",
            "variants": [{"name": "v", "share": 10}],
            "ramp": {"steps": [10, 50, 100], "min_jobs": 3, "min_seconds": 1},
            "guardrails": [{"metric": "seo_score", "min_difference": -5, "min_sample": 3}],
            "step": 0,
            "step_started_at": started,
        }
    )
    await bus.publish(defined(experiment))
    watch = watch_of(app)
    await wait_until(lambda: _known(watch, "ramp"))
    await run_jobs(bus, "ramp", "control", [80, 80, 81])
    await run_jobs(bus, "ramp", "v", [80, 81])
    await wait_until(lambda: _finished(watch, "ramp", 5))
    await watch.evaluate()
    assert events.of("experiment.ramped") == []  # two variant jobs in the step, three needed
    await run_jobs(bus, "ramp", "v", [82])
    await wait_until(lambda: _finished(watch, "ramp", 6))
    await watch.evaluate()
    ramped = await wait_until(lambda: events.of("experiment.ramped"))
    assert ramped[0].data["step"] == 1
    assert ramped[0].data["share"] == 50


async def _known(watch: Any, experiment_id: str) -> bool:
    return any(e.id == experiment_id for e in await watch.experiments())


async def _version(watch: Any, experiment_id: str, version: int) -> bool:
    return any(e.id == experiment_id and e.version == version for e in await watch.experiments())


async def _finished(watch: Any, experiment_id: str, n: int) -> bool:
    return len(await watch.figures(experiment_id)) >= n
