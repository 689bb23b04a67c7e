"""The result cache: an identical request that completed within `max_age` gets a job created
completed with its own copy of the post, labelled `cached_from`, with its own history, webhook
and live events, and no pipeline events."""

from __future__ import annotations

import asyncio
import json

import httpx

from gateway.snapshots import load_job
from seoblog_contracts import Usage
from seoblog_testing import wait_until


async def finished(gateway, jobs, bus, **spec: object) -> dict:  # type: ignore[no-untyped-def]
    job = await jobs.submit(gateway, **spec)
    await bus.publish(jobs.post(job["id"], title="Cached", usage=Usage(calls=3, cost_usd=0.01)))
    return await jobs.wait_for_state(gateway, job["id"], "completed")


async def test_an_identical_request_is_answered_from_the_finished_job(
    gateway, gateway_app, jobs, bus, events
):
    first = await finished(gateway, jobs, bus)
    answer = await gateway.post("/v1/jobs", json=jobs.good | {"priority": "high"})
    assert answer.status_code == 202, answer.text
    cached = answer.json()
    assert cached["id"] != first["id"]
    assert cached["state"] == "completed"
    assert cached["cached_from"] == first["id"]
    assert cached["post_id"] not in (None, first["post_id"])
    assert [h["state"] for h in cached["history"]] == ["queued", "completed"]
    assert cached["post"]["usage"]["calls"] == 0  # reusing a result costs nothing

    # What the answer says is what the store holds.
    stored = await load_job(gateway_app[0].state.parts.store, cached["id"])
    assert stored is not None
    assert stored[0].model_dump(mode="json") == cached

    post = (await gateway.get(f"/v1/posts/{cached['post_id']}")).json()
    assert post["title"] == "Cached"
    assert post["job_id"] == cached["id"]
    assert post["usage"]["calls"] == 0
    again = (await gateway.get(f"/v1/jobs/{cached['id']}")).json()
    assert again["cached_from"] == first["id"]
    await asyncio.sleep(0.3)
    assert events.of("job.submitted.high", cached["id"]) == []  # no pipeline work

    # A copy is never itself the source: the cache points at the job that made the post.
    third = (await gateway.post("/v1/jobs", json=jobs.good)).json()
    assert third["cached_from"] == first["id"]


async def test_max_age_zero_other_specs_and_unfinished_jobs_run_the_pipeline(
    gateway, jobs, bus, events
):
    await finished(gateway, jobs, bus)
    fresh = await jobs.submit(gateway, max_age=0)
    assert fresh["state"] == "queued"
    assert fresh["cached_from"] is None
    other = await jobs.submit(gateway, keywords=["seo", "speed"])
    assert other["state"] == "queued"
    longer = await jobs.submit(gateway, length=1200)
    assert longer["state"] == "queued"
    # `fresh` is still running: a request for `other`'s spec finds nothing finished either.
    same_as_other = await jobs.submit(gateway, keywords=["seo", "speed"])
    assert same_as_other["state"] == "queued"
    await wait_until(lambda: len(events.of("job.submitted.normal")) == 5)


async def test_an_old_result_is_not_reused(gateway, jobs, bus, gateway_app):
    first = await finished(gateway, jobs, bus)
    store = gateway_app[0].state.parts.store
    await store.pool.execute(
        "UPDATE jobs SET updated_at = now() - interval '2 hours' WHERE job_id = $1", first["id"]
    )
    assert (await jobs.submit(gateway, max_age=3600))["state"] == "queued"


async def test_a_cached_job_sends_its_webhook_and_its_stream_ends_at_once(
    live_gateway, jobs, bus, receiver
):
    _, url = live_gateway
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as client:
        await finished(client, jobs, bus)
        job = await jobs.submit(client, callback_url=receiver.url)
        assert job["state"] == "completed"
        await wait_until(lambda: receiver.calls)
        delivered = json.loads(receiver.calls[0][1])
        assert delivered["type"] == "job.completed"
        assert delivered["data"]["job"]["id"] == job["id"]
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
            body = (await response.aread()).decode()
        assert '"state": "completed"' in body
        assert body.rstrip().endswith("event: end\ndata: {}")


async def test_the_openapi_schema_documents_max_age_and_cached_from(gateway):
    schema = (await gateway.get("/openapi.json")).json()["components"]["schemas"]
    assert "max_age" in schema["JobRequest"]["properties"]
    assert "cached_from" in schema["Job"]["properties"]
