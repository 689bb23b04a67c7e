"""Webhooks: a signed POST for each event a job chose, retried under one delivery id, progress
coalesced; callback URLs that reach private addresses are refused, at submission and in the
delivery's own connection (DNS rebinding)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from gateway.webhooks import sign, verify
from seoblog_contracts import JobFailed, JobProgress, Stage
from seoblog_testing import wait_until
from seoblog_testing.processes import free_port


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
        # IPv4 inside IPv6: judged by the IPv4 address (cloud metadata, loopback, private)
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64
        "http://[64:ff9b:1::7f00:1]/hook",  # NAT64, local-use prefix
        "http://[2002:a9fe:a9fe::1]/latest/meta-data",  # 6to4
        "http://[::7f00:1]/hook",  # IPv4-compatible
        "http://[::ffff:0:a00:1]/hook",  # SIIT
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
        "http://100.64.0.1/hook",  # carrier-grade NAT
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


async def test_a_callback_host_dns_cannot_carry_is_refused_not_a_500(gateway, jobs):
    response = await gateway.post(
        "/v1/jobs", json=jobs.good | {"callback_url": f"http://{'a' * 64}.example/hook"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_callback_url"
    assert "63" in response.json()["error"]["message"]


# -- DNS rebinding ---------------------------------------------------------------------------


class Trap:
    """A loopback HTTP server that must never be reached: it counts whatever arrives."""

    def __init__(self) -> None:
        self.hits = 0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        self.hits += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def trap_on_loopback() -> AsyncIterator[tuple[Trap, int]]:
    trap, port = Trap(), free_port()
    server = uvicorn.Server(
        uvicorn.Config(trap, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started)
    try:
        yield trap, port
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`rebind.test` answers 127.0.0.2 (standing for a public address: the tests allow it)
    and 127.0.0.1 (the trap) in turn, like a DNS server with a zero TTL, to everything that
    resolves it: the gateway's check, the guarded transport, or any other client."""
    real = socket.getaddrinfo
    answers: list[str] = []
    lock = threading.Lock()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("rebind.test", b"rebind.test"):
            return real(host, port, *args, **kwargs)
        with lock:
            answers.append("127.0.0.2" if len(answers) % 2 == 0 else "127.0.0.1")
            address = answers[-1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


async def test_a_rebinding_callback_name_never_reaches_loopback(
    service_env, jobs, bus, rebinding_dns
):
    """Checked at submission (127.0.0.2: allowed), then rebound to 127.0.0.1: the delivery's
    connection checks the address it connects to, so the trap gets nothing, the delivery is
    not marked delivered, and `last_error` says only that the address was blocked."""
    settings = jobs.settings(
        service_env, callback_allowed_networks=["127.0.0.2/32"], webhook_backoff_s=[0.1, 0.1]
    )
    async with trap_on_loopback() as (trap, port), jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        job = await jobs.submit(client, callback_url=f"http://rebind.test:{port}/hook")
        assert rebinding_dns == ["127.0.0.2"]  # the check at submission saw an allowed address
        await bus.publish(JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="gone", message="x"))

        async def settled() -> dict | None:
            data = (await client.get(f"/v1/jobs/{job['id']}/webhooks")).json()["data"]
            return data[0] if data and data[0]["state"] != "pending" else None

        record = await wait_until(settled, timeout_s=15)

    assert trap.hits == 0
    assert record["state"] == "failed"
    assert record["last_error"] == "blocked_address"
    assert record["attempts"] == 1  # a refused address is not tried again


async def test_a_callback_that_does_not_answer_reports_a_generic_connection_failure(
    service_env, jobs, bus
):
    """Refused, reset or silent: `last_error` is one class, which maps no ports."""
    closed = free_port()
    settings = jobs.settings(service_env, webhook_backoff_s=[])
    async with jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        job = await jobs.submit(client, callback_url=f"http://127.0.0.1:{closed}/hook")
        await bus.publish(JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="gone", message="x"))

        async def settled() -> dict | None:
            data = (await client.get(f"/v1/jobs/{job['id']}/webhooks")).json()["data"]
            return data[0] if data and data[0]["state"] == "failed" else None

        record = await wait_until(settled, timeout_s=15)
    assert record["last_error"] == "connection failed"


# -- event selection -------------------------------------------------------------------------


async def test_jobs_show_the_events_their_callback_gets(gateway, jobs, receiver):
    default = await jobs.submit(gateway, callback_url=receiver.url)
    chosen = await jobs.submit(
        gateway, callback_url=receiver.url, callback_events=["progress", "failed", "failed"]
    )
    without = await jobs.submit(gateway)

    assert default["callback_events"] == ["completed", "failed", "cancelled"]
    assert chosen["callback_events"] == ["progress", "failed"]
    assert without["callback_events"] is None
    again = (await gateway.get(f"/v1/jobs/{chosen['id']}")).json()
    assert again["callback_events"] == ["progress", "failed"]


@pytest.mark.parametrize(
    "extra",
    [
        {"callback_events": ["finished"]},
        {"callback_events": []},
        {"callback_events": "failed"},
    ],
)
async def test_unknown_or_empty_callback_events_are_refused(gateway, jobs, receiver, extra):
    response = await gateway.post(
        "/v1/jobs", json=jobs.good | {"callback_url": receiver.url} | extra
    )
    assert response.status_code == 422
    assert "callback_events" in response.json()["error"]["message"]


async def test_callback_events_need_a_callback_url(gateway, jobs):
    response = await gateway.post("/v1/jobs", json=jobs.good | {"callback_events": ["failed"]})
    assert response.status_code == 422
    assert "callback_url" in response.json()["error"]["message"]


async def test_a_job_that_chose_failed_only_gets_no_completed_delivery(
    gateway, jobs, bus, receiver
):
    only_failed = await jobs.submit(gateway, callback_url=receiver.url, callback_events=["failed"])
    await bus.publish(jobs.post(only_failed["id"]))
    await jobs.wait_for_state(gateway, only_failed["id"], "completed")
    # A second job that fails: once its delivery is in, the first job's would have been too.
    control = await jobs.submit(
        gateway, callback_url=receiver.url, callback_events=["failed"], max_age=0
    )
    await bus.publish(JobFailed(job_id=control["id"], stage=Stage.CRAWL, code="gone", message="x"))
    await wait_until(lambda: receiver.calls)

    assert [json.loads(body)["type"] for _, body in receiver.calls] == ["job.failed"]
    assert json.loads(receiver.calls[0][1])["data"]["job"]["id"] == control["id"]
    listed = (await gateway.get(f"/v1/jobs/{only_failed['id']}/webhooks")).json()["data"]
    assert listed == []


async def test_progress_webhooks_come_at_each_stage_change_and_coalesced_within_a_stage(
    service_env, jobs, bus, receiver
):
    interval = 0.4
    settings = jobs.settings(service_env, webhook_progress_interval_s=interval)
    async with jobs.in_process(settings) as (_, client):
        client.headers.update(jobs.admin)
        job = await jobs.submit(
            client, callback_url=receiver.url, callback_events=["progress", "completed"]
        )
        job_id = job["id"]

        def bodies() -> list[dict]:
            return [json.loads(body) for _, body in receiver.calls]

        def progress(state: str) -> list[dict]:
            return [b for b in bodies() if b["data"]["job"]["state"] == state]

        await bus.publish(JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=0))
        await wait_until(lambda: progress("crawling"))
        started = asyncio.get_running_loop().time()
        for percent in range(1, 41):  # 40 reports within a stage, over about 3 windows
            await bus.publish(JobProgress(job_id=job_id, stage=Stage.TRANSLATE, percent=percent))
            await asyncio.sleep(interval / 12)  # pacing the producer, not waiting for a result
        published_s = asyncio.get_running_loop().time() - started

        def latest_reached() -> bool:
            return any(
                b["data"]["job"]["progress"]["percent"] == 40 for b in progress("translating")
            )

        await wait_until(latest_reached, timeout_s=10)
        translating = progress("translating")
        await bus.publish(jobs.post(job_id))
        await wait_until(lambda: any(b["type"] == "job.completed" for b in bodies()))

    kinds = [b["type"] for b in bodies()]
    assert kinds.count("job.completed") == 1
    assert set(kinds) == {"job.progress", "job.completed"}
    assert len(progress("crawling")) == 1
    # One at the stage change, then at most one per window the reports spanned; the last
    # report came a window or more after the first, so it can only have come coalesced.
    windows = int(published_s // interval) + 2
    assert published_s > interval
    assert 2 <= len(translating) <= 1 + windows < 40
    assert len({b["id"] for b in bodies()}) == len(bodies())  # one delivery id each


async def test_the_openapi_document_describes_every_webhook_and_its_payload(gateway):
    document = (await gateway.get("/openapi.json", headers={"Authorization": ""})).json()

    hooks = document["webhooks"]
    assert set(hooks) == {"job.completed", "job.failed", "job.cancelled", "job.progress"}
    schemas = document["components"]["schemas"]
    for name, hook in hooks.items():
        operation = hook["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers == {"Seoblog-Delivery", "Seoblog-Timestamp", "Seoblog-Signature"}
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        payload = schemas[ref.rsplit("/", 1)[1]]
        assert payload["properties"]["type"]["const"] == name
        assert payload["examples"][0]["type"] == name
        assert set(payload["required"]) >= {"id", "type", "created_at", "data"}
    assert "coalesced" in hooks["job.progress"]["post"]["description"]
    events = schemas["JobRequest"]["properties"]["callback_events"]["anyOf"][0]
    assert events["items"]["enum"] == ["completed", "failed", "cancelled", "progress"]
