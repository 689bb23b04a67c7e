"""Experiments across the real system (five service processes, NATS, PostgreSQL, Redis, the
fake LLM): a variant whose model writes worse posts is rolled back by the monitor's guardrail
within a stated number of jobs, with an alert; a variant as good as the control ramps step by
step and is promoted; and the variant a job was assigned at submit is the one every stage
applies, through a kill -9 of the generator and the redeliveries that follow."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import nats
import pytest

from seoblog_contracts import Subjects
from seoblog_testing import drop_namespace, env_for, unique_name, wait_until
from seoblog_testing.fake_llm import default_responder
from seoblog_testing.processes import Stack, running_stack

pytestmark = pytest.mark.slow

ARTICLE = "14cc2a0ca59c62a8c9f205a171e9ccf4ef4cf69b0c642f51c8c65c051b39024f"  # NASA, Europa
KEYWORD = "water plumes"
SENTENCES = [
    "Water plumes rise above the icy surface of Europa, as NASA's telescopes have shown.",
    "The vapour comes from an ocean that lies under kilometres of ice.",
    "Scientists measured the plumes in ultraviolet light over several years.",
    "Each plume carries material from the hidden ocean into space.",
    "A probe that flies through a plume could sample that ocean directly.",
    "Europa Clipper will study the moon from orbit in the next decade.",
]
# The most jobs the rollback test lets through before the guardrail must have acted: the
# rule needs MIN_SAMPLE finished jobs in each arm, and the monitor looks every 2 s.
MIN_SAMPLE = 6
ROLLBACK_WITHIN_JOBS = 60


def good_post() -> dict[str, Any]:
    def section(n: int) -> str:
        return " ".join(SENTENCES[(n + i) % len(SENTENCES)] for i in range(10))

    return {
        "title": "Water plumes on Europa: what the new data really shows",
        "slug": "water-plumes-europa",
        "meta_description": "Water plumes above Europa hint at a hidden ocean: what was seen, "
        "how it was measured, and which missions will look closer at the icy moon next.",
        "outline": ["Why it matters", "What comes next"],
        "markdown": f"New {KEYWORD} data changes how we see Europa. {section(0)}\n\n"
        f"## Why {KEYWORD} matter\n\n{section(1)} The {KEYWORD} carry clues.\n\n"
        f"## What comes next\n\n{section(2)}\n\n## The bigger picture\n\n{section(3)}",
        "faq": [
            {"question": "Is there water on Europa?", "answer": "Very likely, under the ice."},
            {"question": "Will we visit?", "answer": "Yes, probes are on the way."},
        ],
        "key_takeaways": ["Plumes were seen", "An ocean may exist", "Probes will look closer"],
    }


def by_model(request: dict[str, Any]) -> str:
    """The fake LLM's writer: model "fake-worse" writes a weak post, every other a good one."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return default_responder(request)
    post = good_post()
    if request.get("model") == "fake-worse":
        post |= {"title": "A post about a moon", "markdown": "Short. " * 30}
    return json.dumps(post)


@pytest.fixture(scope="module")
def stack(infra, fake_llm) -> Iterator[tuple[Stack, str]]:
    ns = unique_name()
    env = env_for(infra, ns) | {
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_API_KEY": fake_llm.api_key,
        "LLM_MODEL": "fake-model",
        "GENERATOR_REVISE_BELOW": "0",  # one call per post: the figures compare first drafts
    }
    with running_stack(env, replicas={"gateway": 2}) as found:
        yield found, ns
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture
async def api(fake_llm) -> AsyncIterator[httpx.AsyncClient]:
    fake_llm.reset()
    fake_llm.responder = by_model
    async with httpx.AsyncClient(timeout=15) as client:
        yield client
    fake_llm.reset()


async def submit(api: httpx.AsyncClient, stack: Stack, url: str, priority: str, n: int) -> dict:
    body = {
        "url": url,
        "keywords": [KEYWORD],
        "target_language": "en",
        "length": 300,
        "priority": priority,
        "max_age": 0,  # every job runs: a result-cache copy is not a measurement
    }
    answer = await api.post(f"{stack.gateway}/v1/jobs", json=body)
    assert answer.status_code == 202, answer.text
    job: dict = answer.json()
    return job


async def experiment(api: httpx.AsyncClient, stack: Stack, experiment_id: str) -> dict:
    body: dict = (await api.get(f"{stack.gateway}/v1/experiments/{experiment_id}")).json()
    return body


async def finished(api: httpx.AsyncClient, stack: Stack, job_id: str) -> dict:
    async def done() -> dict | None:
        job = (await api.get(f"{stack.gateway}/v1/jobs/{job_id}")).json()
        return job if job["state"] in {"completed", "failed", "cancelled"} else None

    try:
        found: dict = await wait_until(done, timeout_s=90, interval_s=0.2)
    except AssertionError:
        pytest.fail(f"job {job_id} did not finish\n{stack.logs()}")
    return found


async def test_a_variant_that_writes_worse_posts_is_rolled_back_with_an_alert(
    stack, api, fixture_site
):
    stack_, ns = stack
    definition = {
        "id": "worse-model",
        "variants": [
            {"name": "worse", "share": 50, "overrides": {"generator.model": "fake-worse"}}
        ],
        "targeting": {"priorities": ["low"]},
        "guardrails": [
            {"metric": "seo_score", "min_difference": -5, "min_sample": MIN_SAMPLE},
            {"metric": "failure_rate", "max_difference": 0.2, "min_sample": MIN_SAMPLE},
        ],
    }
    created = await api.post(f"{stack_.gateway}/v1/experiments", json=definition)
    assert created.status_code == 201, created.text
    nc = await nats.connect(stack_.services["gateway"].env["NATS_URL"])
    alerts: list[dict] = []

    async def on_alert(msg: Any) -> None:
        alerts.append(json.loads(msg.data))

    await nc.subscribe(f"{Subjects(ns).root}.alert.fired", cb=on_alert)
    url = fixture_site.article_url(ARTICLE)
    submitted: list[dict] = []
    try:
        for n in range(ROLLBACK_WITHIN_JOBS):
            if (await experiment(api, stack_, "worse-model"))["status"] == "rolled_back":
                break
            submitted.append(await submit(api, stack_, url, "low", n))
            if len(submitted) % 6 == 0:  # in waves, so finished jobs are there to count
                await finished(api, stack_, submitted[-1]["id"])
        rolled_back = await wait_until(
            lambda: _status(api, stack_, "worse-model", "rolled_back"), timeout_s=30
        )
        assert len(submitted) <= ROLLBACK_WITHIN_JOBS
        assert "seo_score" in rolled_back["reason"]
        worse = rolled_back["report"]["variants"][1]
        assert worse["variant"] == "worse"
        assert worse["share"] == 0
        assert worse["metrics"]["seo_score"]["difference"] < -5
        assert worse["metrics"]["seo_score"]["n"] >= MIN_SAMPLE
        # The variant's posts were written by its model, the control's by the default one.
        for job in submitted[:12]:
            done = await finished(api, stack_, job["id"])
            variant = job["spec"]["experiments"][0]["variant"]
            if done["state"] == "completed":
                model = "fake-worse" if variant == "worse" else "fake-model"
                assert done["post"]["writer"] == f"llm:{model}"
        await wait_until(lambda: any(a["alert"] == "experiment_rolled_back" for a in alerts))

        # Rolled back means 0 %: new jobs are no longer assigned (every replica within 5 s of
        # the change; the gateway's copy refreshes each second).
        async def unassigned() -> bool:
            after = await submit(api, stack_, url, "low", 999)
            return after["spec"]["experiments"] == []

        await wait_until(unassigned, timeout_s=5, interval_s=0.5)
    finally:
        await nc.close()


async def _status(api: httpx.AsyncClient, stack: Stack, experiment_id: str, status: str) -> Any:
    body = await experiment(api, stack, experiment_id)
    return body if body["status"] == status else None


async def test_a_variant_as_good_as_the_control_ramps_to_100_percent_and_is_promoted(
    stack, api, fixture_site
):
    stack_, _ = stack
    definition = {
        "id": "same-quality",
        "variants": [{"name": "other", "overrides": {"generator.model": "fake-other"}}],
        "targeting": {"priorities": ["normal"]},
        "ramp": {"steps": [30, 60, 100], "min_jobs": 2, "min_seconds": 0.5},
        "guardrails": [{"metric": "seo_score", "min_difference": -5, "min_sample": 2}],
    }
    created = await api.post(f"{stack_.gateway}/v1/experiments", json=definition)
    assert created.status_code == 201, created.text
    assert created.json()["variants"][0]["share"] == 30
    url = fixture_site.article_url(ARTICLE)
    steps_seen = set()
    for n in range(120):
        found = await experiment(api, stack_, "same-quality")
        steps_seen.add(found["step"])
        if found["status"] == "promoted":
            break
        job = await submit(api, stack_, url, "normal", n)
        if n % 4 == 3:
            await finished(api, stack_, job["id"])
    else:
        pytest.fail(f"not promoted: {found}\n{stack_.logs()}")
    assert found["promoted_variant"] == "other"
    assert steps_seen >= {0, 1}
    assert found["step"] == 2
    await asyncio.sleep(1.5)  # the other replicas' refresh (every second)
    for n in range(5):
        job = await submit(api, stack_, url, "normal", 1000 + n)
        assert job["spec"]["experiments"][0]["variant"] == "other"


async def test_the_assigned_variant_survives_a_kill_of_the_generator_and_redelivery(
    stack, api, fixture_site, fake_llm
):
    stack_, _ = stack
    definition = {
        "id": "kill-proof",
        "variants": [{"name": "b", "share": 50, "overrides": {"generator.model": "fake-b"}}],
        "targeting": {"priorities": ["high"]},
        "guardrails": [],
    }
    assert (await api.post(f"{stack_.gateway}/v1/experiments", json=definition)).status_code == 201
    fake_llm.latency_s = 1.0  # calls in flight when the generator dies
    url = fixture_site.article_url(ARTICLE)
    jobs = [await submit(api, stack_, url, "high", n) for n in range(8)]
    generator = stack_.services["generator"]
    await wait_until(lambda: fake_llm.calls >= 1 or len(fake_llm.requests) >= 1, timeout_s=60)
    generator.kill()
    fake_llm.latency_s = 0.0
    generator.start()
    stack_.wait_ready(names=["generator"])
    for job in jobs:
        done = await finished(api, stack_, job["id"])
        assert done["state"] == "completed", (done, stack_.logs())
        assigned = job["spec"]["experiments"]
        assert done["spec"]["experiments"] == assigned  # recorded once, at submit
        model = "fake-b" if assigned[0]["variant"] == "b" else "fake-model"
        assert done["post"]["writer"] == f"llm:{model}"
        post = (await api.get(f"{stack_.gateway}/v1/posts/{done['post_id']}")).json()
        assert post["experiments"] == assigned
    assert {j["spec"]["experiments"][0]["variant"] for j in jobs} == {"control", "b"}


async def test_a_change_reaches_the_other_gateway_process_within_5_s(stack, api, fixture_site):
    stack_, _ = stack
    one, two = (s.url for s in stack_.replicas("gateway"))
    url = fixture_site.article_url(ARTICLE)
    definition = {
        "id": "replicas",
        "variants": [
            {"name": "all", "share": 100, "overrides": {"crawler.extract_mode": "recall"}}
        ],
        "targeting": {"languages": ["de"]},
        "guardrails": [],
    }
    body = {"url": url, "keywords": [KEYWORD], "target_language": "de", "max_age": 0}

    async def variant_on_two() -> list[dict]:
        job = (await api.post(f"{two}/v1/jobs", json=body)).json()
        experiments = job["spec"]["experiments"]  # other tests' experiments may match too
        found: list[dict] = [e for e in experiments if e["experiment_id"] == "replicas"]
        return found

    assert (await api.post(f"{one}/v1/experiments", json=definition)).status_code == 201
    started = time.monotonic()
    await wait_until(variant_on_two, timeout_s=5, interval_s=0.2)
    assert time.monotonic() - started < 5
    assert (await api.post(f"{one}/v1/experiments/replicas/pause")).status_code == 200
    started = time.monotonic()

    async def none_on_two() -> bool:
        return not await variant_on_two()

    await wait_until(none_on_two, timeout_s=5, interval_s=0.2)
    assert time.monotonic() - started < 5
