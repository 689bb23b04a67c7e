"""The request path's shortcuts keep their promises: leased rate-limit tokens never let a key
past its limit, and a status poll answers exactly what the job is."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from gateway.auth import Authenticator, Principal
from gateway.errors import ApiError
from seoblog_runtime.ratelimit import TokenBucket


async def test_leased_tokens_keep_the_limit_and_spare_redis(service_env, jobs, monkeypatch):
    settings = jobs.settings(service_env, rate_per_s=10.0, rate_burst=30)
    auth = Authenticator(settings, store=None)  # type: ignore[arg-type]
    redis = aioredis.from_url(service_env["REDIS_URL"])
    auth.redis, auth.prefix = redis, service_env["SEOBLOG_NAMESPACE"]
    calls = 0
    take = TokenBucket.take

    async def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await take(self, *args, **kwargs)

    monkeypatch.setattr(TokenBucket, "take", counted)
    who = Principal("key_lease", frozenset({"jobs:read"}), None, None)
    results = await asyncio.gather(*(auth.limit(who) for _ in range(40)), return_exceptions=True)
    allowed = sum(1 for r in results if not isinstance(r, BaseException))
    refused = [r for r in results if isinstance(r, ApiError)]
    assert 30 <= allowed <= 31  # the burst, and at most what the rate refilled meanwhile
    assert refused
    assert refused[0].status == 429
    assert calls < 40  # most requests spent a leased token
    await redis.aclose()


async def test_a_status_poll_answers_the_job_as_the_model_has_it(gateway, jobs, bus):
    job = await jobs.submit(gateway)
    first = await gateway.get(f"/v1/jobs/{job['id']}")
    assert first.headers["content-type"] == "application/json"
    assert first.json() == job | {"links": job["links"]}
    await bus.publish(jobs.post(job["id"]))
    done = await jobs.wait_for_state(gateway, job["id"], "completed")
    assert done["version"] > job["version"]
    assert done["post"]["title"] == "T"


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_ops_routes_answer_without_a_key(gateway, path):
    gateway.headers.pop("Authorization", None)
    assert (await gateway.get(path)).status_code == 200
