"""A job submitted through the gateway travels crawler -> translator -> generator and comes
back as a stored post, with its state history and one trace across the four services."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import nats
import pytest

from seoblog_contracts import Subjects, TextTranslated, new_event_id
from seoblog_testing import drop_namespace, env_for, signed_headers, unique_name, wait_until
from seoblog_testing.fake_llm import default_responder
from seoblog_testing.processes import Stack, running_stack

# Not marked slow: the end-to-end path through five real service processes is part of every
# `make test`, on a fresh machine too.

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # NASA, Europa
PIPELINE = ["queued", "crawling", "translating", "generating", "completed"]


def post_writer(request: dict) -> str:
    """A plausible LLM answer: the post JSON for the generator, the default otherwise."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return default_responder(request)
    return json.dumps(
        {
            "title": "Water plumes on Europa: what NASA found and why it matters",
            "slug": "water-plumes-europa-nasa",
            "meta_description": "Water plumes on Europa were confirmed by NASA: how the "
            "vapour was detected, what it says about the ocean below the ice, and what comes "
            "next for Europa Clipper.",
            "outline": ["What NASA saw", "Why it matters"],
            "markdown": "Water plumes rise above Europa, NASA reports.\n\n## What NASA saw\n\n"
            "Telescopes measured vapour.\n\n## Why it matters\n\nAn ocean may lie below."
            "\n\n<script>alert(1)</script>",
            "faq": [{"question": "Is there water on Europa?", "answer": "Yes, as vapour."}],
            "key_takeaways": ["Plumes were detected", "An ocean may exist"],
        }
    )


@pytest.fixture(scope="module")
def llm_stack(infra, fake_llm, otlp_collector) -> Iterator[tuple[Stack, str]]:
    ns = unique_name()
    env = env_for(infra, ns) | {
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-model",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    with running_stack(env) as stack:
        yield stack, ns
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture(scope="module")
def offline_stack(infra) -> Iterator[tuple[Stack, str]]:
    ns = unique_name()
    with running_stack(env_for(infra, ns)) as stack:
        yield stack, ns
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture
async def api(request) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def run_job(client: httpx.AsyncClient, stack: Stack, body: dict) -> dict:
    submitted = await client.post(f"{stack.gateway}/v1/jobs", json=body)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/v1/jobs/{job_id}"

    async def finished() -> dict | None:
        job = (await client.get(f"{stack.gateway}/v1/jobs/{job_id}")).json()
        return job if job["state"] in {"completed", "failed", "cancelled"} else None

    try:
        return await wait_until(finished, timeout_s=60, interval_s=0.2)
    except AssertionError:
        pytest.fail(f"job did not finish\n{stack.logs()}")


async def test_job_through_llm_path_ends_with_a_stored_translated_post_in_one_trace(
    llm_stack, api, fixture_site, fake_llm, otlp_collector
):
    stack, _ = llm_stack
    fake_llm.responder = post_writer
    job = await run_job(
        api,
        stack,
        {
            "url": fixture_site.article_url(ARTICLE),
            "keywords": ["water plumes", "Europa"],
            "target_language": "ko",
            "length": 600,
            "priority": "high",
        },
    )
    assert job["state"] == "completed", (job, stack.logs())
    assert [h["state"] for h in job["history"]] == PIPELINE
    assert job["post"]["writer"] == "llm:fake-model"
    assert job["post"]["usage"]["calls"] >= 2  # at least one translation and the post
    assert job["post"]["usage"]["prompt_tokens"] > 0

    post = (await api.get(f"{stack.gateway}{job['links']['post']}")).json()
    assert post["language"] == "ko"
    assert post["markdown"].startswith("Water plumes rise above Europa")
    assert "<h2>What NASA saw</h2>" in post["html"]
    assert "<script>alert" not in post["html"]  # the LLM's markdown is sanitised
    assert post["title"].startswith("Water plumes on Europa")
    assert 0 <= post["seo"]["score"] <= 100
    markdown = await api.get(f"{stack.gateway}{job['links']['post']}?format=markdown")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# {post['title']}")

    translate_calls = [r for r in fake_llm.requests if "translat" in str(r).lower()]
    assert translate_calls, "the translator never called the LLM"

    trace_id = job["trace_id"]
    assert trace_id
    wanted = {"gateway", "crawler", "translator", "generator"}
    try:
        await otlp_collector.wait_for_async(
            lambda _: wanted <= otlp_collector.services_in_trace(trace_id), timeout_s=15
        )
    except TimeoutError:
        pytest.fail(f"trace has only {otlp_collector.services_in_trace(trace_id)}")


async def test_job_offline_path_passes_text_through_and_labels_the_post_offline(
    offline_stack, api, fixture_site
):
    stack, _ = offline_stack
    job = await run_job(
        api,
        stack,
        {
            "url": fixture_site.article_url(ARTICLE),
            "keywords": ["water plumes"],
            "target_language": "en",
            "length": 400,
        },
    )
    assert job["state"] == "completed", (job, stack.logs())
    assert [h["state"] for h in job["history"]] == PIPELINE
    post = (await api.get(f"{stack.gateway}/v1/posts/{job['post_id']}")).json()
    assert post["writer"] == "offline"
    assert "offline" in post["markdown"].splitlines()[0].lower()
    assert "water plumes" in post["title"].lower()
    assert post["usage"]["calls"] == 0


async def test_missing_page_fails_the_job_with_a_readable_error(offline_stack, api, fixture_site):
    stack, _ = offline_stack
    job = await run_job(
        api,
        stack,
        {
            "url": fixture_site.url("/no/such/page"),
            "keywords": ["anything"],
            "target_language": "en",
        },
    )
    assert job["state"] == "failed"
    assert job["error"]["code"] == "not_found"
    assert job["error"]["stage"] == "crawl"
    assert "404" in job["error"]["message"]
    assert job["post"] is None


async def test_redelivered_event_does_not_duplicate_the_post(
    llm_stack, api, fixture_site, fake_llm, infra
):
    stack, ns = llm_stack
    subjects = Subjects(ns)
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    job = await run_job(
        api,
        stack,
        {
            "url": fixture_site.article_url(ARTICLE),
            "keywords": ["Jupiter moon"],
            "target_language": "de",
            "length": 500,
        },
    )
    assert job["state"] == "completed", stack.logs()
    # Take the job's seo.text.translated message off the stream and deliver it again, as
    # JetStream would after a lost ack: once under its own id, once under a fresh one.
    sub = await js.subscribe(subjects.of(TextTranslated), ordered_consumer=True)
    original = None
    async for msg in sub.messages:
        if f'"{job["id"]}"' in msg.data.decode():
            original = TextTranslated.model_validate_json(msg.data)
            break
    await sub.unsubscribe()
    assert original is not None
    calls_before = len(fake_llm.requests)
    for copy in (original, original.model_copy(update={"event_id": new_event_id()})):
        body = copy.model_dump_json().encode()
        await js.publish(
            subjects.of(copy), body, headers=signed_headers(body, msg_id=copy.event_id)
        )

    conn = await asyncpg.connect(infra.database_url)
    try:

        async def consumer_idle() -> bool:
            info = await js.consumer_info(subjects.stream, "generator-generate_post")
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_until(consumer_idle, timeout_s=20)
        posts = await conn.fetchval(
            f'SELECT count(*) FROM "{ns}_generator".posts WHERE job_id = $1', job["id"]
        )
        read_model = await conn.fetchval(
            f'SELECT count(*) FROM "{ns}_gateway".posts WHERE job_id = $1', job["id"]
        )
    finally:
        await conn.close()
        await nc.close()
    assert posts == 1
    assert read_model == 1
    assert len(fake_llm.requests) == calls_before, "a redelivery called (and billed) the LLM again"
    again = (await api.get(f"{stack.gateway}/v1/jobs/{job['id']}")).json()
    assert again["post_id"] == job["post_id"]
