"""API keys: hashed at rest, scoped, managed by admins, rate limited per key; open mode."""

from __future__ import annotations

import hashlib

import httpx


async def make_key(client: httpx.AsyncClient, *scopes: str, **extra: object) -> dict:
    response = await client.post("/v1/keys", json={"name": "test", "scopes": list(scopes)} | extra)
    assert response.status_code == 201, response.text
    body: dict = response.json()
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_requests_without_a_key_or_with_a_wrong_one_answer_401(gateway, jobs):
    response = await gateway.post("/v1/jobs", json=jobs.good, headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = await gateway.get("/v1/jobs", headers=bearer("sk_seo_nope"))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"


async def test_health_readiness_metrics_docs_and_the_page_need_no_key(gateway):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/"):
        response = await gateway.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path


async def test_created_key_is_shown_once_and_only_its_hash_is_stored(gateway, gateway_app):
    created = await make_key(gateway, "jobs:read")
    assert created["key"].startswith("sk_seo_")
    assert len(created["key"]) > 40
    store = gateway_app[0].state.parts.store
    row = await store.pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", created["id"])
    assert row["key_hash"] == hashlib.sha256(created["key"].encode()).hexdigest()
    assert created["key"] not in str(dict(row))
    listed = (await gateway.get("/v1/keys")).json()["data"]
    assert created["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)


async def test_scopes_decide_what_a_key_may_do(gateway, jobs):
    reader = (await make_key(gateway, "jobs:read"))["key"]
    writer = (await make_key(gateway, "jobs:write"))["key"]
    denied = await gateway.post("/v1/jobs", json=jobs.good, headers=bearer(reader))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_scope"
    submitted = await gateway.post("/v1/jobs", json=jobs.good, headers=bearer(writer))
    assert submitted.status_code == 202
    assert (await gateway.get("/v1/jobs", headers=bearer(writer))).status_code == 403
    assert (await gateway.get("/v1/keys", headers=bearer(reader))).status_code == 403
    x_api_key = await gateway.get("/v1/jobs", headers={"Authorization": "", "X-API-Key": reader})
    assert x_api_key.status_code == 200


async def test_a_key_sees_only_its_own_jobs_and_an_admin_sees_all(gateway, jobs):
    alice = (await make_key(gateway, "jobs:read", "jobs:write"))["key"]
    bob = (await make_key(gateway, "jobs:read", "jobs:write"))["key"]
    job = (await gateway.post("/v1/jobs", json=jobs.good, headers=bearer(alice))).json()
    assert (await gateway.get(f"/v1/jobs/{job['id']}", headers=bearer(bob))).status_code == 404
    assert (
        await gateway.post(f"/v1/jobs/{job['id']}/cancel", headers=bearer(bob))
    ).status_code == 404
    assert (await gateway.get("/v1/jobs", headers=bearer(bob))).json()["data"] == []
    mine = (await gateway.get("/v1/jobs", headers=bearer(alice))).json()["data"]
    assert [j["id"] for j in mine] == [job["id"]]
    assert (await gateway.get(f"/v1/jobs/{job['id']}")).status_code == 200  # admin


async def test_a_revoked_key_stops_working_at_once(gateway):
    created = await make_key(gateway, "jobs:read")
    assert (await gateway.get("/v1/jobs", headers=bearer(created["key"]))).status_code == 200
    revoked = await gateway.delete(f"/v1/keys/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = await gateway.get("/v1/jobs", headers=bearer(created["key"]))
    assert after.status_code == 401
    assert (await gateway.delete("/v1/keys/key_nope")).status_code == 404


async def test_over_its_rate_limit_a_key_gets_429_with_retry_after_and_ratelimit_headers(
    gateway,
):
    key = (await make_key(gateway, "jobs:read", rate_per_s=0.5, burst=3))["key"]
    answers = [await gateway.get("/v1/jobs", headers=bearer(key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[0].headers["ratelimit-policy"] == "3;w=6"
    limited = answers[3]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-limit"] == "3"
    other = (await make_key(gateway, "jobs:read", rate_per_s=0.5, burst=3))["key"]
    assert (await gateway.get("/v1/jobs", headers=bearer(other))).status_code == 200


async def test_open_mode_needs_no_key(service_env, jobs):
    settings = jobs.settings(service_env, open_mode=True, admin_key=None, host="127.0.0.1")
    async with jobs.in_process(settings) as (_, client):
        assert (await client.post("/v1/jobs", json=jobs.good)).status_code == 202
        assert (await client.get("/v1/jobs")).status_code == 200
