"""Issue 12.5 and 12.6: failed authentication is limited per client address and unknown keys
are remembered, so guessing costs no lookup each; a batch costs one job of the quota per item."""

from __future__ import annotations

import secrets

import httpx


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count_lookups(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every key lookup the store makes from now on (the real query still runs)."""
    store = app.state.parts.store
    calls: list[str] = []
    original = store.key_by_hash

    async def counting(digest: str):  # type: ignore[no-untyped-def]
        calls.append(digest)
        return await original(digest)

    store.key_by_hash = counting
    return calls


async def test_a_repeated_unknown_key_is_looked_up_once(service_env, jobs):
    async with jobs.in_process(jobs.settings(service_env)) as (app, client):
        lookups = count_lookups(app)
        for _ in range(10):
            response = await client.get("/v1/jobs", headers=bearer("sk_seo_guess"))
            assert response.status_code == 401
    assert len(lookups) == 1


async def test_an_address_guessing_keys_gets_429_with_retry_after_and_costs_no_more_lookups(
    service_env, jobs
):
    settings = jobs.settings(service_env, auth_fail_burst=5, auth_fail_per_s=0.1)
    async with jobs.in_process(settings) as (app, client):
        assert (await client.get("/v1/jobs", headers=jobs.admin)).status_code == 200
        lookups = count_lookups(app)
        answers = [
            await client.get("/v1/jobs", headers=bearer(f"sk_seo_{secrets.token_hex(8)}"))
            for _ in range(20)
        ]
        statuses = [r.status_code for r in answers]
        assert statuses[:5] == [401] * 5
        assert set(statuses[5:]) == {429}
        limited = answers[-1]
        assert limited.json()["error"]["code"] == "too_many_auth_failures"
        assert int(limited.headers["Retry-After"]) >= 1
        assert len(lookups) == 6  # five failures and the one that went over, then none
        # A key in use from the same address still works, and other addresses are not blocked.
        assert (await client.get("/v1/jobs", headers=jobs.admin)).status_code == 200
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 1234)),
            base_url="http://gw",
        )
        async with other:
            assert (await other.get("/v1/jobs", headers=bearer("sk_seo_x"))).status_code == 401


async def test_a_batch_takes_one_job_of_the_quota_per_item_and_over_it_queues_nothing(
    service_env, jobs
):
    settings = jobs.settings(service_env, jobs_burst=10, jobs_per_s=0.01)
    async with jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        batch = {"jobs": [jobs.good | {"url": f"https://example.com/{i}"} for i in range(6)]}
        first = await client.post("/v1/jobs/batch", json=batch)
        assert first.status_code == 200, first.text
        assert first.json()["accepted"] == 6
        before = (await client.get("/v1/jobs", params={"limit": 100})).json()["data"]
        second = await client.post("/v1/jobs/batch", json=batch)  # 6 more, 4 left
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "jobs_rate_limited"
        assert int(second.headers["Retry-After"]) >= 1
        after = (await client.get("/v1/jobs", params={"limit": 100})).json()["data"]
        assert len(after) == len(before) == 6  # nothing of the refused batch was queued
        for _ in range(4):  # single submits take from the same quota
            assert (await client.post("/v1/jobs", json=jobs.good)).status_code == 202
        alone = await client.post("/v1/jobs", json=jobs.good)
        assert alone.status_code == 429
        assert alone.json()["error"]["code"] == "jobs_rate_limited"


async def test_a_batch_bigger_than_the_jobs_burst_is_refused_whole(service_env, jobs):
    settings = jobs.settings(service_env, jobs_burst=3)
    async with jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        batch = {"jobs": [jobs.good] * 4}
        response = await client.post("/v1/jobs/batch", json=batch)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "batch_too_large"
        assert (await client.get("/v1/jobs")).json()["data"] == []
