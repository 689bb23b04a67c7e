"""Experiments at the gateway: the admin API, assignment at submit (recorded in the job's spec
and its event), the report from the read model, the monitor's decisions applied, and a change
reaching a second replica within 5 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.store import NewJob
from seoblog_contracts import (
    ExperimentRamped,
    ExperimentRolledBack,
    JobFailed,
    JobSpec,
    SeoReport,
    Stage,
    Usage,
    new_event_id,
    utcnow,
)
from seoblog_testing import wait_until

PROMPT = {
    "id": "prompt-v2",
    "variants": [{"name": "v2", "share": 50, "overrides": {"generator.prompt_version": "post_v2"}}],
    "targeting": {"priorities": ["low"]},
}


@pytest.fixture
async def gateway(service_env, jobs) -> AsyncIterator[httpx.AsyncClient]:
    """The admin client of a gateway whose rate limit lets a test submit a few hundred jobs."""
    settings = jobs.settings(service_env, rate_per_s=1000, rate_burst=1000)
    async with jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        yield client


async def test_unknown_overrides_and_bad_definitions_are_422_and_ids_are_unique(gateway):
    bad = PROMPT | {"variants": [{"name": "v2", "share": 5, "overrides": {"generator.x": 1}}]}
    answer = await gateway.post("/v1/experiments", json=bad)
    assert answer.status_code == 422
    assert "not an override any service accepts" in answer.text
    over = PROMPT | {"variants": [{"name": "a", "share": 60}, {"name": "b", "share": 50}]}
    assert (await gateway.post("/v1/experiments", json=over)).status_code == 422
    assert (await gateway.post("/v1/experiments", json=PROMPT)).status_code == 201
    again = await gateway.post("/v1/experiments", json=PROMPT)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "experiment_exists"
    listed = (await gateway.get("/v1/experiments")).json()["items"]
    assert [e["id"] for e in listed] == ["prompt-v2"]
    keys = {o["key"] for o in (await gateway.get("/v1/experiments/overrides")).json()}
    assert "crawler.extract_mode" in keys


async def test_a_client_cannot_give_its_job_variants_or_overrides(gateway):
    # Variants are the gateway's to assign: a submit naming one (with an override choosing
    # another model, say) is refused, alone or in a batch, and queues nothing. Schemathesis
    # found this (a NUL in an override key reached PostgreSQL: a 500).
    chosen = {
        "url": "https://example.com/a",
        "experiments": [
            {"experiment_id": "x", "variant": "v", "overrides": {"generator.model": "pricey"}}
        ],
    }
    answer = await gateway.post("/v1/jobs", json=chosen)
    assert answer.status_code == 422, answer.text
    assert "assigned by the gateway" in answer.text
    batch = (await gateway.post("/v1/jobs/batch", json={"jobs": [chosen]})).json()
    assert (batch["accepted"], batch["results"][0]["status"]) == (0, 422), batch
    assert "assigned by the gateway" in batch["results"][0]["error"]["message"]
    listed = (await gateway.get("/v1/jobs")).json()
    assert listed["data"] == []
    schema = (await gateway.get("/openapi.json")).json()["components"]["schemas"]
    assert "experiments" not in schema["JobRequest"]["properties"]


async def test_experiments_need_the_admin_scope(gateway):
    key = (
        await gateway.post("/v1/keys", json={"name": "w", "scopes": ["jobs:write", "jobs:read"]})
    ).json()["key"]
    answer = await gateway.get("/v1/experiments", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 403


async def test_submitted_jobs_carry_their_variant_to_the_event_and_the_report_compares(
    gateway, jobs, bus, events
):
    assert (await gateway.post("/v1/experiments", json=PROMPT)).status_code == 201
    submitted = []
    for n in range(40):
        submitted.append(
            await jobs.submit(gateway, url=f"https://example.com/p{n}", priority="low")
        )
    high = await jobs.submit(gateway, url="https://example.com/high", priority="high")
    assert high["spec"]["experiments"] == []  # not targeted
    variants = {j["id"]: j["spec"]["experiments"][0]["variant"] for j in submitted}
    assert set(variants.values()) == {"control", "v2"}
    in_v2 = [j for j in submitted if variants[j["id"]] == "v2"]
    assert in_v2[0]["spec"]["experiments"][0]["overrides"] == {
        "generator.prompt_version": "post_v2"
    }
    # The assignment travels in the submitted event: stages never assign.
    event = await wait_until(lambda: events.of("job.submitted.low", in_v2[0]["id"]))
    assert event[0].data["spec"]["experiments"] == in_v2[0]["spec"]["experiments"]

    for n, job in enumerate(submitted):
        v2 = variants[job["id"]] == "v2"
        if v2 and job is in_v2[0]:
            await bus.publish(
                JobFailed(job_id=job["id"], stage=Stage.GENERATE, code="llm_timeout", message="x")
            )
            continue
        await bus.publish(
            jobs.post(
                job["id"],
                seo=SeoReport(score=(60 if v2 else 80) + n % 3),
                usage=Usage(prompt_tokens=100, completion_tokens=50, calls=1, cost_usd=0.002),
                experiments=job["spec"]["experiments"],
            )
        )
    for job in submitted:
        await jobs.wait_for_state(gateway, job["id"], "failed" if job is in_v2[0] else "completed")
    post = (await gateway.get(f"/v1/jobs/{submitted[0]['id']}")).json()
    assert post["spec"]["experiments"] == submitted[0]["spec"]["experiments"]

    shown = (await gateway.get("/v1/experiments/prompt-v2")).json()
    report = shown["report"]
    assert report["control"] == "control"
    control, v2 = report["variants"]
    assert control["variant"] == "control"
    assert control["share"] == 50
    assert control["jobs"] + v2["jobs"] == 40
    assert v2["failed"] == 1
    assert v2["failures_by_code"] == {"llm_timeout": 1}
    score = v2["metrics"]["seo_score"]
    assert score["difference"] < -15
    assert score["significant"]
    assert score["ci_low"] < score["difference"] < score["ci_high"]
    assert v2["metrics"]["cost_per_post_usd"]["value"] == pytest.approx(0.002)
    assert v2["metrics"]["tokens_per_post"]["value"] == 150
    assert control["metrics"]["seo_score"]["difference"] is None


async def test_result_cache_keeps_variants_apart(gateway, jobs, bus):
    everyone = {
        "id": "all",
        "variants": [{"name": "v", "share": 100, "overrides": {"generator.model": "other"}}],
    }
    first = await jobs.submit(gateway)
    await bus.publish(jobs.post(first["id"]))
    await jobs.wait_for_state(gateway, first["id"], "completed")
    assert (await gateway.post("/v1/experiments", json=everyone)).status_code == 201
    second = await jobs.submit(gateway)
    assert second["state"] == "queued"  # the variant's request is not the cached one
    assert second["spec"]["experiments"][0]["variant"] == "v"


async def test_pause_resume_shares_promote_and_rollback(gateway, jobs):
    assert (await gateway.post("/v1/experiments", json=PROMPT)).status_code == 201
    paused = await gateway.post("/v1/experiments/prompt-v2/pause", json={"reason": "look"})
    assert paused.json()["status"] == "paused"
    job = await jobs.submit(gateway, url="https://example.com/paused", priority="low")
    assert job["spec"]["experiments"] == []
    assert (await gateway.post("/v1/experiments/prompt-v2/pause")).status_code == 409
    resumed = await gateway.post("/v1/experiments/prompt-v2/resume")
    assert resumed.json()["status"] == "running"
    shares = await gateway.put("/v1/experiments/prompt-v2/shares", json={"shares": {"v2": 0}})
    assert shares.json()["variants"][0]["share"] == 0
    job = await jobs.submit(gateway, url="https://example.com/zero", priority="low")
    assert job["spec"]["experiments"][0]["variant"] == "control"
    bad = await gateway.put("/v1/experiments/prompt-v2/shares", json={"shares": {"x": 1}})
    assert bad.status_code == 409
    promoted = await gateway.post("/v1/experiments/prompt-v2/promote", json={"variant": "v2"})
    assert promoted.json()["status"] == "promoted"
    for n in range(5):
        job = await jobs.submit(gateway, url=f"https://example.com/pr{n}", priority="low")
        assert job["spec"]["experiments"][0]["variant"] == "v2"
    rolled = await gateway.post("/v1/experiments/prompt-v2/rollback")
    assert rolled.json()["status"] == "rolled_back"
    job = await jobs.submit(gateway, url="https://example.com/rb", priority="low")
    assert job["spec"]["experiments"] == []
    assert (await gateway.get("/v1/experiments/nope")).status_code == 404


async def test_the_monitors_rollback_and_ramp_decisions_are_applied_once(gateway, bus, events):
    ramped = PROMPT | {
        "id": "ramped",
        "variants": [{"name": "v2", "overrides": {"generator.temperature": 0.2}}],
        "ramp": {"steps": [10, 50, 100], "min_jobs": 1, "min_seconds": 0},
    }
    created = (await gateway.post("/v1/experiments", json=ramped)).json()
    assert created["step"] == 0
    assert created["variants"][0]["share"] == 10
    await bus.publish(ExperimentRamped(experiment_id="ramped", step=1, share=50))

    async def at_step(step: int, status: str = "running") -> dict | None:
        body = (await gateway.get("/v1/experiments/ramped")).json()
        return body if body["step"] == step and body["status"] == status else None

    moved = await wait_until(lambda: at_step(1))
    assert moved["variants"][0]["share"] == 50
    await bus.publish(ExperimentRamped(experiment_id="ramped", step=1, share=50))  # stale
    await bus.publish(ExperimentRamped(experiment_id="ramped", step=2, share=100))
    done = await wait_until(lambda: at_step(2, "promoted"))
    assert done["promoted_variant"] == "v2"

    # Every change was announced for the monitor, with the whole definition.
    def announced() -> list[int]:
        return [r.data["version"] for r in events.of("experiment.changed") if r.data]

    await wait_until(lambda: done["version"] in announced())
    assert announced() == [1, 2, 3]

    assert (await gateway.post("/v1/experiments", json=PROMPT)).status_code == 201
    await bus.publish(
        ExperimentRolledBack(experiment_id="prompt-v2", variant="v2", reason="seo_score low")
    )

    async def rolled_back() -> dict | None:
        body = (await gateway.get("/v1/experiments/prompt-v2")).json()
        return body if body["status"] == "rolled_back" else None

    body = await wait_until(rolled_back)
    assert body["reason"] == "seo_score low"
    assert [v["share"] for v in body["report"]["variants"]] == [0, 0]


async def test_a_change_reaches_a_second_replica_within_5_s(service_env, jobs):
    settings = jobs.settings(service_env, rate_per_s=1000, rate_burst=1000)
    async with (
        jobs.in_process(settings) as (_, one),
        jobs.in_process(settings) as (_, two),
    ):
        one.headers.update(jobs.admin)
        two.headers.update(jobs.admin)
        everyone = PROMPT | {"targeting": {}, "variants": [{"name": "v2", "share": 100}]}
        assert (await one.post("/v1/experiments", json=everyone)).status_code == 201
        started = time.monotonic()

        async def assigned() -> bool:
            job = await jobs.submit(two, url=f"https://example.com/r{time.monotonic_ns()}")
            return bool(job["spec"]["experiments"])

        await wait_until(assigned, timeout_s=5)
        assert time.monotonic() - started < 5
        await one.post("/v1/experiments/prompt-v2/pause")
        started = time.monotonic()

        async def unassigned() -> bool:
            job = await jobs.submit(two, url=f"https://example.com/r{time.monotonic_ns()}")
            return not job["spec"]["experiments"]

        await wait_until(unassigned, timeout_s=5)
        assert time.monotonic() - started < 5
        await asyncio.sleep(0)


async def test_the_relay_republishes_a_job_with_the_variant_it_was_assigned(
    service_env, jobs, events
):
    settings = jobs.settings(service_env, relay_after_s=0.5, relay_interval_s=0.2)
    async with jobs.in_process(settings) as (app, client):
        client.headers.update(jobs.admin)
        everyone = PROMPT | {"targeting": {}, "variants": [{"name": "v2", "share": 100}]}
        assert (await client.post("/v1/experiments", json=everyone)).status_code == 201
        # Assigned and written, then the gateway died before publishing: the relay sends the
        # recorded assignment, and the experiment's later changes do not alter it.
        job_id = new_event_id()
        spec = app.state.experiments.assign(job_id, JobSpec(url="https://example.com/orphan"))
        assert spec.experiments[0].variant == "v2"
        await client.post("/v1/experiments/prompt-v2/rollback")
        store = app.state.parts.store
        await store.create_job(
            NewJob(job_id, spec, new_event_id(), utcnow(), None, publish_after_s=0.5)
        )
        sent = await wait_until(lambda: events.of("job.submitted.normal", job_id), timeout_s=10)
        assert sent[0].data["spec"]["experiments"] == [a.model_dump() for a in spec.experiments]
