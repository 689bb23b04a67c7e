"""The projection a batch at a time: a job's states in order whatever the batch holds, progress
collapsed to the latest, redeliveries changing nothing, and events of unknown jobs ignored."""

from __future__ import annotations

import asyncio

import pytest

from gateway import store as store_module
from gateway.store import NewJob
from seoblog_contracts import (
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSpec,
    Stage,
    new_event_id,
    utcnow,
)
from seoblog_testing import wait_until


async def new_job(store) -> str:  # type: ignore[no-untyped-def]
    job_id = new_event_id()
    spec = JobSpec(url="https://example.com/batch")
    await store.create_job(NewJob(job_id, spec, new_event_id(), utcnow(), None))
    return job_id


async def test_one_batch_moves_each_job_through_its_states_in_order(gateway, gateway_app, jobs):
    store = gateway_app[0].state.parts.store
    a, b = await new_job(store), await new_job(store)
    batch = [
        JobProgress(job_id=a, stage=Stage.CRAWL, percent=10),
        JobProgress(job_id=b, stage=Stage.CRAWL, percent=10),
        JobProgress(job_id=a, stage=Stage.CRAWL, percent=90),
        JobProgress(job_id=a, stage=Stage.TRANSLATE, percent=30),
        JobProgress(job_id=b, stage=Stage.CRAWL, percent=70),
        JobProgress(job_id=a, stage=Stage.CRAWL, percent=95),  # late: a has moved on
        JobProgress(job_id=a, stage=Stage.GENERATE, percent=50),
        post := jobs.post(a),
        JobProgress(job_id=a, stage=Stage.GENERATE, percent=99),  # after the end: ignored
        JobFailed(job_id=b, stage=Stage.CRAWL, code="timeout", message="slow"),
        JobProgress(job_id=b, stage=Stage.TRANSLATE, percent=5),
    ]
    result = await store.project(batch, read_back=True)
    assert result.changed == {a, b}
    assert result.ended == {a, b}
    # The moved jobs come back as they now are, for the live updates and webhooks.
    assert {r["job_id"]: r["state"] for r in result.rows} == {a: "completed", b: "failed"}
    assert [h["state"] for h in next(r for r in result.rows if r["job_id"] == b)["history"]] == [
        "queued",
        "crawling",
        "failed",
    ]
    job_a = (await gateway.get(f"/v1/jobs/{a}")).json()
    assert [h["state"] for h in job_a["history"]] == [
        "queued",
        "crawling",
        "translating",
        "generating",
        "completed",
    ]
    assert job_a["post_id"] == post.post_id
    assert job_a["progress"] == {"stage": "generate", "percent": 100, "message": "done"}
    job_b = (await gateway.get(f"/v1/jobs/{b}")).json()
    assert [h["state"] for h in job_b["history"]] == ["queued", "crawling", "failed"]
    assert job_b["progress"]["percent"] == 70  # the latest of its crawl reports
    assert job_b["error"]["code"] == "timeout"

    # A redelivery of the whole batch changes nothing.
    again = await store.project(batch)
    assert again.changed == set()
    assert (await gateway.get(f"/v1/jobs/{a}")).json()["version"] == job_a["version"]


@pytest.mark.parametrize("optimistic_rounds", [0, 3])
async def test_batches_of_the_same_jobs_at_once_keep_every_rule(
    gateway, gateway_app, jobs, monkeypatch, optimistic_rounds
):
    """The job and post consumers project the same jobs at the same time: whichever writes
    first, the other plans again on the state it left (rounds 0: the locking path alone)."""
    monkeypatch.setattr(store_module, "_OPTIMISTIC_ROUNDS", optimistic_rounds)
    store = gateway_app[0].state.parts.store
    ids = [await new_job(store) for _ in range(12)]
    stages = [Stage.CRAWL, Stage.TRANSLATE, Stage.GENERATE]
    progress = [JobProgress(job_id=i, stage=s, percent=50) for s in stages for i in ids]
    posts = {i: jobs.post(i) for i in ids}  # after the progress, as a pipeline makes them
    results = await asyncio.gather(
        *(store.project(progress[k::3]) for k in range(3)),
        *(store.project([posts[i]]) for i in ids),
        *(store.project([posts[i]]) for i in ids[:4]),  # redelivered at once
    )
    assert set().union(*(r.ended for r in results)) == set(ids)
    order = ["queued", "crawling", "translating", "generating", "completed"]
    for i in ids:
        job = (await gateway.get(f"/v1/jobs/{i}")).json()
        assert job["state"] == "completed"
        assert job["post_id"] == posts[i].post_id
        states = [h["state"] for h in job["history"]]
        assert states == sorted(set(states), key=order.index)  # forward, no state twice
        assert states[0] == "queued"
        assert states[-1] == "completed"
        assert job["version"] == 1 + sum(i in r.changed for r in results)  # one per write
        assert job["progress"] == {"stage": "generate", "percent": 100, "message": "done"}
        assert (await gateway.get(f"/v1/posts/{posts[i].post_id}")).status_code == 200


async def test_a_cancelled_job_keeps_no_post_even_in_the_same_batch(gateway, gateway_app, jobs):
    store = gateway_app[0].state.parts.store
    job_id = await new_job(store)
    post = jobs.post(job_id)
    result = await store.project([JobCancelled(job_id=job_id, reason="user"), post])
    assert result.dropped_posts == 1
    assert (await gateway.get(f"/v1/posts/{post.post_id}")).status_code == 404
    assert (await gateway.get(f"/v1/jobs/{job_id}")).json()["state"] == "cancelled"


async def test_events_of_unknown_jobs_create_nothing_and_are_dead_lettered(
    gateway, gateway_app, bus, events, jobs
):
    stranger = new_event_id()
    post = jobs.post(stranger)
    await bus.publish(JobProgress(job_id=stranger, stage=Stage.CRAWL, percent=5))
    await bus.publish(post)
    ours = await jobs.submit(gateway)
    await bus.publish(jobs.post(ours["id"]))  # behind the stranger's post in the stream
    await jobs.wait_for_state(gateway, ours["id"], "completed")
    listed = (await gateway.get("/v1/posts")).json()["data"]
    assert post.post_id not in [p["id"] for p in listed]
    assert (await gateway.get(f"/v1/posts/{post.post_id}")).status_code == 404
    assert [j["id"] for j in (await gateway.get("/v1/jobs")).json()["data"]] == [ours["id"]]
    counters = gateway_app[0].state.counters
    await wait_until(lambda: counters.unknown_job >= 2)
    dead = [r for r in events.of(".post.generated", stranger) if ".dlq." in r.subject]
    assert dead
    assert dead[0].headers["Seoblog-Dlq-Reason"] == "unknown_job"
    metrics = (await gateway.get("/metrics")).text
    assert "seoblog_gateway_unknown_job_events_total 2.0" in metrics


async def test_the_gateway_does_not_project_its_own_submitted_events(gateway, jobs, events):
    job = await jobs.submit(gateway)
    await wait_until(lambda: events.of("job.submitted.normal", job["id"]))
    await asyncio.sleep(0.3)
    again = (await gateway.get(f"/v1/jobs/{job['id']}")).json()
    assert again["version"] == 1
    assert [h["state"] for h in again["history"]] == ["queued"]


async def test_the_job_consumer_is_not_sent_the_jobs_the_gateway_submitted(
    gateway, gateway_app, bus, jobs
):
    gw_bus = gateway_app[0].state.parts.bus
    stream, durable = gw_bus.subjects.stream, "gateway-project_job"
    first = await jobs.submit(gateway)
    await jobs.submit(gateway, priority="high")
    # Both submitted events are in the stream (the submits were confirmed): none is pending
    # for the job consumer, none was delivered to it.
    info = await gw_bus.js.consumer_info(stream, durable)
    assert (info.num_pending, info.delivered.consumer_seq) == (0, 0)

    await bus.publish(JobProgress(job_id=first["id"], stage=Stage.CRAWL, percent=0))
    await jobs.wait_for_state(gateway, first["id"], "crawling")
    info = await gw_bus.js.consumer_info(stream, durable)
    assert info.delivered.consumer_seq == 1
