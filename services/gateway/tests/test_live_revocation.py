"""Issue 12.4 and 12.5: open live streams of a revoked key end (SSE with a `key_revoked` error
event, WebSockets with close code 4401), on the replica that revoked it and on the others; a
WebSocket's messages spend its key's tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest
import websockets

from seoblog_testing import wait_until

RECHECK_S = 0.5


async def make_key(client: httpx.AsyncClient, **extra: object) -> dict:
    body = {"name": "live", "scopes": ["jobs:read", "jobs:write"]} | extra
    response = await client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict = response.json()
    return created


async def sse_until_closed(client: httpx.AsyncClient, url: str, key: str, opened) -> list[str]:
    """The stream's raw lines until the server ends it; `opened` is set once it sends."""
    lines: list[str] = []
    async with client.stream("GET", url, headers={"Authorization": f"Bearer {key}"}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
            if line.startswith("event: job"):
                opened.set()
    return lines


async def messages_until_closed(ws, into: list[dict]) -> websockets.ConnectionClosed:  # type: ignore[no-untyped-def]
    """Collect the socket's messages until the server closes it; the close it sent."""
    try:
        while True:
            into.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except websockets.ConnectionClosed as closed:
        return closed


@pytest.mark.parametrize("replicas", [1, 2], ids=["same_replica", "other_replica"])
async def test_revoking_a_key_ends_its_open_sse_stream_with_a_key_revoked_event(
    service_env, jobs, replicas
):
    settings = jobs.settings(service_env, live_recheck_s=RECHECK_S, live_heartbeat_s=30)
    async with (
        jobs.served(settings) as (_, first),
        jobs.served(settings) as (_, second),
        httpx.AsyncClient(headers=jobs.admin, timeout=20) as admin,
    ):
        streaming = second if replicas == 2 else first
        created = (
            await admin.post(
                f"{first}/v1/keys", json={"name": "live", "scopes": ["jobs:read", "jobs:write"]}
            )
        ).json()
        key = created["key"]
        job = (
            await admin.post(
                f"{first}/v1/jobs", json=jobs.good, headers={"Authorization": f"Bearer {key}"}
            )
        ).json()
        opened = asyncio.Event()
        async with httpx.AsyncClient(timeout=20) as client:
            stream = asyncio.create_task(
                sse_until_closed(client, f"{streaming}/v1/jobs/{job['id']}/events", key, opened)
            )
            await asyncio.wait_for(opened.wait(), 10)
            revoked = await admin.delete(f"{first}/v1/keys/{created['id']}")
            assert revoked.status_code == 200
            began = time.monotonic()
            lines = await asyncio.wait_for(stream, 10)
            took = time.monotonic() - began
    assert "event: error" in lines
    data = lines[lines.index("event: error") + 1]
    assert json.loads(data.removeprefix("data: "))["code"] == "key_revoked"
    assert "event: end" not in lines
    assert took < RECHECK_S + 2  # the stated bound: GATEWAY_LIVE_RECHECK_S (and a notice)


async def test_revoking_a_key_closes_its_websocket_with_4401(service_env, jobs):
    settings = jobs.settings(service_env, live_recheck_s=RECHECK_S, live_heartbeat_s=30)
    async with (
        jobs.served(settings) as (_, url),
        httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as admin,
    ):
        created = await make_key(admin)
        ws_url = url.replace("http://", "ws://") + "/v1/jobs/live"
        async with websockets.connect(
            ws_url, additional_headers={"Authorization": f"Bearer {created['key']}"}
        ) as ws:
            await ws.send(json.dumps({"follow": ["nope"]}))
            assert json.loads(await ws.recv())["code"] == "job_not_found"
            assert (await admin.delete(f"/v1/keys/{created['id']}")).status_code == 200
            began = time.monotonic()
            closed = await messages_until_closed(ws, [])
            took = time.monotonic() - began
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4401
    assert closed.rcvd.reason == "key_revoked"
    assert took < RECHECK_S + 2


async def test_websocket_messages_spend_the_keys_tokens_and_a_flood_is_closed_with_4429(
    live_gateway, jobs
):
    app, url = live_gateway
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as admin:
        created = await make_key(admin, rate_per_s=1, burst=2)
    ws_url = url.replace("http://", "ws://") + "/v1/jobs/live"
    errors: list[dict] = []
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"Bearer {created['key']}"}
    ) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):  # it may close us first
            for _ in range(200):
                await ws.send(json.dumps({"follow": ["nope"]}))
        closed = await messages_until_closed(ws, errors)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4429
    assert closed.rcvd.reason == "rate_limited"
    served = [e for e in errors if e["code"] == "job_not_found"]  # each one a job lookup
    limited = [e for e in errors if e["code"] == "rate_limited"]
    assert len(served) <= 4  # burst 2 (one spent on connecting), 1 a second after that
    assert len(limited) >= 19
    assert limited[0]["retry_after"] >= 1
    await wait_until(lambda: app.state.hub.connections == 0)
