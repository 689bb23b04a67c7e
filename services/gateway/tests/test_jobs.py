"""Jobs: batch submit, list with filters and cursors, cancel, idempotency keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from seoblog_contracts import JobProgress, Stage
from seoblog_testing import wait_until


async def test_batch_submit_answers_each_item_on_its_own(gateway, jobs, events):
    good = jobs.good
    response = await gateway.post(
        "/v1/jobs/batch",
        json={"jobs": [good, good | {"url": "ftp://x.example/a"}, good | {"priority": "low"}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [r["status"] for r in body["results"]] == [202, 422, 202]
    assert body["results"][1]["error"]["code"] == "invalid_request"
    assert body["results"][1]["error"]["message"].startswith("url")
    low = body["results"][2]["job"]["id"]
    await wait_until(lambda: events.of("job.submitted.low", low))


async def test_batch_over_the_limit_or_empty_answers_422(gateway, jobs, gateway_app):
    settings = gateway_app[0].state.settings
    many = [jobs.good] * (settings.max_batch + 1)
    too_many = await gateway.post("/v1/jobs/batch", json={"jobs": many})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["code"] == "batch_too_large"
    empty = await gateway.post("/v1/jobs/batch", json={"jobs": []})
    assert empty.status_code == 422
    assert empty.json()["error"]["code"] == "invalid_request"


async def test_unknown_fields_are_refused(gateway, jobs):
    response = await gateway.post("/v1/jobs", json=jobs.good | {"lenght": 900})
    assert response.status_code == 422
    assert "lenght" in response.json()["error"]["message"]


async def test_list_filters_by_state_keyword_and_date_and_pages_with_a_cursor(gateway, jobs, bus):
    made = [
        await jobs.submit(gateway, url=f"https://example.com/{i}", keywords=[f"topic{i % 2}"])
        for i in range(5)
    ]
    await bus.publish(JobProgress(job_id=made[0]["id"], stage=Stage.CRAWL, percent=10))
    await jobs.wait_for_state(gateway, made[0]["id"], "crawling")

    crawling = (await gateway.get("/v1/jobs", params={"state": "crawling"})).json()
    assert [j["id"] for j in crawling["data"]] == [made[0]["id"]]
    topic1 = (await gateway.get("/v1/jobs", params={"q": "TOPIC1"})).json()
    assert {j["id"] for j in topic1["data"]} == {made[1]["id"], made[3]["id"]}
    by_url = (await gateway.get("/v1/jobs", params={"q": "example.com/4"})).json()
    assert [j["id"] for j in by_url["data"]] == [made[4]["id"]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (await gateway.get("/v1/jobs", params={"created_after": future})).json()
    assert later["data"] == []

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await gateway.get("/v1/jobs", params=params)).json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [j["id"] for j in reversed(made)]  # newest first, each once
    bad = await gateway.get("/v1/jobs", params={"cursor": "nonsense"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_cursor"


async def test_cancel_publishes_the_event_and_ends_the_job(gateway, jobs, events, bus):
    job = await jobs.submit(gateway)
    response = await gateway.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "cancelled"
    await wait_until(lambda: events.of("job.cancelled", job["id"]))
    # A post that was already on its way is not kept, and the job stays cancelled.
    post = jobs.post(job["id"])
    await bus.publish(post)
    await bus.publish(JobProgress(job_id=job["id"], stage=Stage.GENERATE, percent=90))
    await asyncio.sleep(0.5)  # give the projection the chance to get it wrong
    again = (await gateway.get(f"/v1/jobs/{job['id']}")).json()
    assert again["state"] == "cancelled"
    assert again["post_id"] is None
    assert (await gateway.get(f"/v1/posts/{post.post_id}")).status_code == 404


async def test_cancel_after_completion_answers_409_and_unknown_job_404(gateway, jobs, bus):
    job = await jobs.submit(gateway)
    await bus.publish(jobs.post(job["id"]))
    await jobs.wait_for_state(gateway, job["id"], "completed")
    response = await gateway.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "job_already_finished"
    assert "completed" in error["message"]
    assert (await gateway.post("/v1/jobs/nope/cancel")).status_code == 404


async def test_idempotency_key_replays_the_job_or_refuses_another_body(gateway, jobs, events):
    headers = {"Idempotency-Key": "order-4711"}
    first = await gateway.post("/v1/jobs", json=jobs.good, headers=headers)
    assert first.status_code == 202
    again = await gateway.post("/v1/jobs", json=jobs.good, headers=headers)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await gateway.post("/v1/jobs", json=jobs.good | {"length": 900}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    await asyncio.sleep(0.3)
    assert len(events.of("job.submitted.normal")) == 1


async def test_concurrent_requests_with_one_idempotency_key_make_one_job(gateway, jobs):
    headers = {"Idempotency-Key": "same-for-all"}
    answers = await asyncio.gather(
        *(gateway.post("/v1/jobs", json=jobs.good, headers=headers) for _ in range(8))
    )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    listed = (await gateway.get("/v1/jobs")).json()
    assert len(listed["data"]) == 1
