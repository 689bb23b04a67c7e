"""The gateway in-process (its real lifespan: NATS, PostgreSQL, Redis), driven over ASGI."""

import httpx
import pytest

from seoblog_contracts import (
    JobFailed,
    JobProgress,
    JobSubmitted,
    PostGenerated,
    SeoReport,
    Stage,
    Usage,
    new_event_id,
)
from seoblog_testing import wait_until

GOOD = {"url": "https://example.com/post", "keywords": ["seo"], "target_language": "ko"}


async def submit(client: httpx.AsyncClient, **overrides: object) -> dict:
    response = await client.post("/v1/jobs", json=GOOD | overrides)
    assert response.status_code == 202, response.text
    return response.json()


async def test_submit_answers_202_with_queued_job_and_publishes_it(gateway, events):
    job = await submit(gateway, priority="high")
    assert job["state"] == "queued"
    assert job["links"]["self"] == f"/v1/jobs/{job['id']}"
    assert [h["state"] for h in job["history"]] == ["queued"]
    await wait_until(lambda: events.of("job.submitted.high", job["id"]))
    sent = events.of("job.submitted.high", job["id"])[0]
    assert sent.headers["Nats-Msg-Id"] == sent.data["event_id"]
    assert "traceparent" in sent.headers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/" + "a" * 3000}, "url"),
        ({"url": "https://example.com", "target_language": "Korean!"}, "target_language"),
        ({"url": "https://example.com", "length": 10}, "length"),
        ({"url": "https://example.com", "keywords": ["  "]}, "keywords"),
        ({"url": "https://example.com", "keywords": ["k"] * 50}, "keywords"),
        ({"url": "https://example.com", "priority": "urgent"}, "priority"),
        ({}, "url"),
    ],
)
async def test_bad_input_answers_422_with_a_json_error(gateway, body, field):
    response = await gateway.post("/v1/jobs", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]


async def test_malformed_json_and_wrong_types_answer_422_not_500(gateway):
    response = await gateway.post(
        "/v1/jobs", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    response = await gateway.post("/v1/jobs", json=["a", "list"])
    assert response.status_code == 422


async def test_oversized_body_answers_413(gateway):
    response = await gateway.post("/v1/jobs", json=GOOD | {"keywords": ["x" * 70] * 2000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_unknown_job_and_post_answer_404_with_codes(gateway):
    assert (await gateway.get("/v1/jobs/nope")).json()["error"]["code"] == "job_not_found"
    assert (await gateway.get("/v1/posts/nope")).json()["error"]["code"] == "post_not_found"


async def test_job_state_is_projected_from_events_idempotently(gateway, bus):
    job = await submit(gateway)
    job_id = job["id"]
    crawl = JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=0)
    for event in (crawl, crawl, JobProgress(job_id=job_id, stage=Stage.TRANSLATE, percent=50)):
        await bus.publish(event)
    # a late crawl progress must not move the job back
    await bus.publish(JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=100))

    async def state() -> dict | None:
        body = (await gateway.get(f"/v1/jobs/{job_id}")).json()
        return body if body["state"] == "translating" else None

    body = await wait_until(state)
    assert body["progress"] == {"stage": "translate", "percent": 50, "message": ""}
    post = PostGenerated(
        job_id=job_id,
        post_id=new_event_id(),
        source_url="https://example.com/post",
        language="ko",
        title="T",
        slug="t",
        meta_description="m",
        markdown="## A\n\nb",
        html="<h2>A</h2><p>b</p>",
        keywords=["seo"],
        seo=SeoReport(score=70),
        writer="offline",
        usage=Usage(),
    )
    await bus.publish(post)
    await bus.publish(post.model_copy(update={"event_id": new_event_id()}))  # a duplicate

    async def completed() -> dict | None:
        body = (await gateway.get(f"/v1/jobs/{job_id}")).json()
        return body if body["state"] == "completed" else None

    body = await wait_until(completed)
    assert [h["state"] for h in body["history"]] == [
        "queued",
        "crawling",
        "translating",
        "completed",
    ]
    assert body["post"]["id"] == post.post_id
    await bus.publish(JobFailed(job_id=job_id, stage=Stage.GENERATE, code="x", message="late"))
    html = await gateway.get(f"/v1/posts/{post.post_id}", headers={"accept": "text/html"})
    assert "\n<h2>A</h2><p>b</p>\n" in html.text
    assert html.text.startswith('<!doctype html>\n<html lang="ko">')
    assert (await gateway.get(f"/v1/jobs/{job_id}")).json()["state"] == "completed"


async def test_failed_job_shows_its_error(gateway, bus):
    job = await submit(gateway)
    await bus.publish(
        JobFailed(
            job_id=job["id"],
            stage=Stage.CRAWL,
            code="dns_failure",
            message="The host example.invalid does not resolve.",
        )
    )

    async def failed() -> dict | None:
        body = (await gateway.get(f"/v1/jobs/{job['id']}")).json()
        return body if body["state"] == "failed" else None

    body = await wait_until(failed)
    assert body["error"]["code"] == "dns_failure"
    assert body["error"]["stage"] == "crawl"


async def test_health_readiness_metrics_and_docs_answer(gateway):
    assert (await gateway.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"nats": True, "postgres": True, "redis": True}
    assert "seoblog_consumer_messages" in (await gateway.get("/metrics")).text
    spec = (await gateway.get("/openapi.json")).json()
    assert "/v1/jobs" in spec["paths"]


async def test_submitted_event_round_trips_through_its_model(gateway, events):
    job = await submit(gateway)
    await wait_until(lambda: events.of("job.submitted.normal", job["id"]))
    event = JobSubmitted.model_validate(events.of("job.submitted.normal", job["id"])[0].data)
    assert event.spec.keywords == ["seo"]


@pytest.mark.parametrize("language", ["zz-invalid", "xx", "und", "klingon"])
async def test_a_target_language_that_names_no_real_language_is_refused_with_422(gateway, language):
    answer = await gateway.post(
        "/v1/jobs", json={"url": "https://example.org/a", "target_language": language}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert "target_language" in str(error)


@pytest.mark.parametrize("language", ["ko", "pt-BR", "zh-Hant", "fil"])
async def test_real_language_tags_are_accepted(gateway, language):
    answer = await gateway.post(
        "/v1/jobs",
        json={"url": "https://example.org/a", "target_language": language, "max_age": 0},
    )
    assert answer.status_code == 202, answer.text
