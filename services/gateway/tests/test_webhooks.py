"""Webhooks: a signed POST when a job ends, retried under one delivery id; callback URLs that
reach private addresses are refused."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.webhooks import sign, verify
from seoblog_contracts import JobFailed, Stage
from seoblog_testing import wait_until


async def test_a_failed_job_posts_a_signed_webhook_retried_under_one_delivery_id(
    gateway, gateway_app, jobs, bus, receiver
):
    receiver.fail_first = 2
    job = await jobs.submit(gateway, callback_url=receiver.url)
    assert job["callback_url"] == receiver.url
    await bus.publish(JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="gone", message="x"))
    await wait_until(lambda: len(receiver.calls) == 3, timeout_s=15)

    secret = (await gateway.get("/v1/webhooks/secret")).json()["secret"]
    assert secret == gateway_app[0].state.webhooks.secret
    deliveries = {h["seoblog-delivery"] for h, _ in receiver.calls}
    assert len(deliveries) == 1
    headers, body = receiver.calls[-1]
    assert verify(secret, headers["seoblog-signature"], body)
    assert not verify("whsec_wrong", headers["seoblog-signature"], body)
    assert not verify(secret, headers["seoblog-signature"], body + b" ")
    timestamp = int(headers["seoblog-timestamp"])
    assert headers["seoblog-signature"] == sign(secret, timestamp, body)
    payload = json.loads(body)
    assert payload["type"] == "job.failed"
    assert payload["id"] == headers["seoblog-delivery"]
    assert payload["data"]["job"]["error"]["code"] == "gone"

    async def delivered() -> list | None:
        data = (await gateway.get(f"/v1/jobs/{job['id']}/webhooks")).json()["data"]
        return data if data and data[0]["state"] == "delivered" else None

    [record] = await wait_until(delivered)
    assert record["attempts"] == 3
    # A redelivered event does not send a second webhook.
    await bus.publish(JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="gone", message="x"))
    await asyncio.sleep(0.5)
    assert len(receiver.calls) == 3


async def test_a_cancelled_job_posts_its_webhook_too(gateway, jobs, receiver):
    job = await jobs.submit(gateway, callback_url=receiver.url)
    await gateway.post(f"/v1/jobs/{job['id']}/cancel")
    await wait_until(lambda: receiver.calls)
    assert json.loads(receiver.calls[0][1])["type"] == "job.cancelled"


async def test_webhooks_give_up_after_the_last_back_off(gateway, jobs, bus, receiver):
    receiver.fail_first = 100
    job = await jobs.submit(gateway, callback_url=receiver.url)
    await bus.publish(JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="gone", message="x"))

    async def failed() -> list | None:
        data = (await gateway.get(f"/v1/jobs/{job['id']}/webhooks")).json()["data"]
        return data if data and data[0]["state"] == "failed" else None

    [record] = await wait_until(failed, timeout_s=15)
    assert record["attempts"] == 4  # the first try and one per back-off step
    assert record["last_error"] == "HTTP 500"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
    ],
)
async def test_callback_urls_reaching_private_addresses_are_refused(service_env, jobs, url):
    settings = jobs.settings(service_env, callback_allowed_networks=[])
    async with jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        response = await client.post("/v1/jobs", json=jobs.good | {"callback_url": url})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "callback_url_blocked"


async def test_unresolvable_or_non_http_callbacks_are_refused(gateway, jobs):
    bad_host = await gateway.post(
        "/v1/jobs", json=jobs.good | {"callback_url": "http://no-such-host.invalid/hook"}
    )
    assert bad_host.status_code == 422
    assert bad_host.json()["error"]["code"] == "callback_url_unresolvable"
    ftp = await gateway.post("/v1/jobs", json=jobs.good | {"callback_url": "ftp://a.example/x"})
    assert ftp.status_code == 422
