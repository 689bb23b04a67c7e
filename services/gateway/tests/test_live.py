"""Live progress over a real socket: SSE per job (resumable), a WebSocket for many jobs,
heartbeats, finished jobs answered at once, and no connection left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from seoblog_contracts import JobFailed, JobProgress, Stage
from seoblog_testing import wait_until
from seoblog_testing.processes import free_port


async def sse_events(response: httpx.Response) -> AsyncIterator[dict]:
    """Parse an SSE stream into {event, id, data} dicts; comments come as {"comment": ...}."""
    event: dict = {}
    async for line in response.aiter_lines():
        if line == "":
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


async def test_sse_sends_the_job_then_each_change_and_ends_when_it_finishes(
    live_gateway, jobs, bus
):
    app, url = live_gateway
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as client:
        job = await jobs.submit(client)
        got: list[dict] = []
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in sse_events(response):
                if "comment" in event or "retry" in event:
                    continue
                got.append(event)
                if event["event"] == "end":
                    break
                state = json.loads(event["data"])["state"]
                if state == "queued":
                    await bus.publish(JobProgress(job_id=job["id"], stage=Stage.CRAWL, percent=40))
                elif state == "crawling":
                    await bus.publish(
                        JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="timeout", message="x")
                    )
    states = [json.loads(e["data"])["state"] for e in got if e["event"] == "job"]
    assert states == ["queued", "crawling", "failed"]
    ids = [int(e["id"]) for e in got if e["event"] == "job"]
    assert ids == sorted(ids)
    assert got[-1]["event"] == "end"
    await wait_until(lambda: app.state.hub.connections == 0)


async def test_sse_resumes_after_last_event_id_and_a_finished_job_answers_at_once(
    live_gateway, jobs, bus
):
    _, url = live_gateway
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as client:
        job = await jobs.submit(client)
        await bus.publish(JobProgress(job_id=job["id"], stage=Stage.CRAWL, percent=10))
        crawling = await jobs.wait_for_state(client, job["id"], "crawling")
        # Seen everything: the stream sends only heartbeats until something changes.
        headers = {"Last-Event-ID": str(crawling["version"])}
        async with client.stream(
            "GET", f"/v1/jobs/{job['id']}/events", headers=headers
        ) as response:
            seen: list[dict] = []
            async for event in sse_events(response):
                seen.append(event)
                if event.get("comment") == "heartbeat":
                    break
        assert not [e for e in seen if e.get("event") == "job"]
        await bus.publish(JobFailed(job_id=job["id"], stage=Stage.CRAWL, code="gone", message="x"))
        await jobs.wait_for_state(client, job["id"], "failed")
        async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
            events = [e async for e in sse_events(response) if "event" in e]
        assert [e["event"] for e in events] == ["job", "end"]
        assert json.loads(events[0]["data"])["error"]["code"] == "gone"


async def test_sse_client_that_goes_away_leaves_no_listener_behind(live_gateway, jobs):
    app, url = live_gateway
    hub = app.state.hub
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as client:
        job = await jobs.submit(client)
        for _ in range(3):
            async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
                async for event in sse_events(response):
                    if event.get("event") == "job":
                        break
                assert hub.connections >= 1
    await wait_until(lambda: hub.connections == 0 and hub.listeners == 0)


async def test_sse_needs_a_key_and_unknown_jobs_answer_404(live_gateway, jobs):
    _, url = live_gateway
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        response = await client.get("/v1/jobs/nope/events")
        assert response.status_code == 401
        response = await client.get("/v1/jobs/nope/events", params={"api_key": jobs.admin_key})
        assert response.status_code == 404


async def test_websocket_follows_many_jobs_with_heartbeats(live_gateway, jobs, bus):
    app, url = live_gateway
    ws_url = url.replace("http://", "ws://") + "/v1/jobs/live"
    async with httpx.AsyncClient(base_url=url, headers=jobs.admin, timeout=20) as client:
        a = await jobs.submit(client)
        b = await jobs.submit(client)
        done = await jobs.submit(client)
        await bus.publish(JobFailed(job_id=done["id"], stage=Stage.CRAWL, code="x", message="y"))
        await jobs.wait_for_state(client, done["id"], "failed")

    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"Bearer {jobs.admin_key}"}
    ) as ws:
        await ws.send(json.dumps({"follow": [a["id"], b["id"], done["id"], "nope"]}))
        got: list[dict] = []

        async def receive_until(predicate) -> None:
            while not predicate():
                got.append(json.loads(await ws.recv()))

        await receive_until(lambda: len([m for m in got if m["type"] != "ping"]) >= 4)
        first = {m["job"]["id"]: m["job"]["state"] for m in got if m["type"] == "job"}
        assert first == {a["id"]: "queued", b["id"]: "queued", done["id"]: "failed"}
        assert [m["code"] for m in got if m["type"] == "error"] == ["job_not_found"]

        await bus.publish(JobProgress(job_id=b["id"], stage=Stage.TRANSLATE, percent=50))
        await receive_until(
            lambda: any(m["type"] == "job" and m["job"]["state"] == "translating" for m in got)
        )
        await receive_until(lambda: any(m["type"] == "ping" for m in got))
        assert app.state.hub.connections == 1
    await wait_until(lambda: app.state.hub.connections == 0 and app.state.hub.listeners == 0)


async def test_websocket_without_a_key_is_closed_with_4401(live_gateway):
    _, url = live_gateway
    ws_url = url.replace("http://", "ws://") + "/v1/jobs/live"
    async with websockets.connect(ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason == "missing_api_key"


async def test_websocket_takes_the_key_from_the_query_for_browsers(live_gateway, jobs):
    _, url = live_gateway
    ws_url = url.replace("http://", "ws://") + f"/v1/jobs/live?api_key={jobs.admin_key}"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"follow": ["nope"]}))
        message = json.loads(await ws.recv())
    assert message == {
        "type": "error",
        "code": "job_not_found",
        "message": "No job with id 'nope'.",
        "job_id": "nope",
    }


async def test_a_client_of_one_replica_sees_changes_another_replica_projects(
    service_env, jobs, bus
):
    settings = jobs.settings(service_env)
    states: list[str] = []
    async with (
        jobs.served(settings) as (_, first),
        jobs.served(settings) as (_, second),
        httpx.AsyncClient(headers=jobs.admin, timeout=20) as client,
    ):
        job = (await client.post(f"{first}/v1/jobs", json=jobs.good)).json()
        async with client.stream("GET", f"{second}/v1/jobs/{job['id']}/events") as response:
            async for event in sse_events(response):
                if event.get("event") != "job":
                    continue
                states.append(json.loads(event["data"])["state"])
                if states == ["queued"]:
                    for stage in (Stage.CRAWL, Stage.TRANSLATE):
                        await bus.publish(JobProgress(job_id=job["id"], stage=stage, percent=1))
                if states[-1] == "translating":
                    break
    assert states[0] == "queued"
    assert states[-1] == "translating"


async def test_each_replicas_status_cache_follows_changes_another_replica_projects(
    service_env, jobs, bus
):
    settings = jobs.settings(service_env, status_cache_ttl_s=600)  # only the fan-out refreshes
    async with jobs.in_process(settings) as (_, first), jobs.in_process(settings) as (_, second):
        first.headers.update(jobs.admin)
        second.headers.update(jobs.admin)
        job = await jobs.submit(first)
        for client in (first, second):  # both replicas now hold the job in their cache
            assert (await client.get(f"/v1/jobs/{job['id']}")).json()["state"] == "queued"
        await bus.publish(JobProgress(job_id=job["id"], stage=Stage.CRAWL, percent=30))
        for client in (first, second):
            crawling = await jobs.wait_for_state(client, job["id"], "crawling")
            assert crawling["progress"]["percent"] == 30


@pytest.mark.slow
async def test_a_stopping_gateway_ends_open_streams_so_it_stops_promptly(
    service_env, jobs, tmp_path
):
    port = free_port()
    env = os.environ | service_env | {"GATEWAY_PORT": str(port), "GATEWAY_HOST": "127.0.0.1"}
    log = (tmp_path / "gateway.log").open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 - starting it takes no time
        [sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout_s=30)
            job = await jobs.submit(client)  # open mode, as service_env sets it
            seen: list[str] = []
            async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
                async for event in sse_events(response):
                    if event.get("event"):
                        seen.append(event["event"])
                        if seen == ["job"]:
                            process.send_signal(signal.SIGTERM)
        assert seen == ["job"]  # the stream ended without `end`: the client will reconnect
        await wait_until(lambda: process.poll() is not None, timeout_s=15)
        # uvicorn re-raises the signal once it has shut down gracefully.
        assert process.returncode in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


async def test_a_replica_does_not_parse_its_own_snapshots_again_but_the_others_do(
    service_env, jobs, bus
):
    """NATS sends a replica its own live snapshots back: it skips them (its listeners and its
    cache had the snapshot already); another replica takes them into its cache."""
    settings = jobs.settings(service_env, status_cache_ttl_s=600)
    async with (
        jobs.in_process(settings) as (first_app, first),
        jobs.in_process(settings) as (
            second_app,
            second,
        ),
    ):
        first.headers.update(jobs.admin)
        second.headers.update(jobs.admin)
        job = await jobs.submit(first)
        assert (await second.get(f"/v1/jobs/{job['id']}")).json()["state"] == "queued"
        hubs = [app.state.hub for app in (first_app, second_app)]
        skipped = [hub.echoes_skipped for hub in hubs]
        await bus.publish(JobProgress(job_id=job["id"], stage=Stage.CRAWL, percent=30))
        for client in (first, second):
            await jobs.wait_for_state(client, job["id"], "crawling")
        await wait_until(lambda: sum(h.echoes_skipped for h in hubs) > sum(skipped))
        assert sum(h.echoes_skipped for h in hubs) == sum(skipped) + 1  # the projector's own
