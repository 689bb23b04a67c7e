"""The gateway in-process (its real lifespan: NATS, PostgreSQL, Redis): over ASGI for plain
requests, and behind a real uvicorn socket for streams, WebSockets and the browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings
from seoblog_contracts import PostGenerated, SeoReport, Usage, new_event_id
from seoblog_testing import settings_for, wait_until
from seoblog_testing.processes import free_port

ADMIN_KEY = "sk_seo_test-admin-key-0123456789abcdefghijklmnopqrstu"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
GOOD = {"url": "https://example.com/post", "keywords": ["seo"], "target_language": "ko"}


def gateway_settings(service_env: dict[str, str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "callback_allowed_networks": ["127.0.0.0/8", "::1/128"],
        "webhook_backoff_s": [0.2, 0.2, 0.2],
        "live_heartbeat_s": 0.5,
        # No crawler in these tests (port 9 refuses): a post's source is a 503 unless a test
        # starts one (test_post_source.py).
        "crawler_url": "http://127.0.0.1:9",
    }
    values.update(overrides)
    settings: Settings = settings_for(Settings, service_env, **values)
    return settings


@asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an ASGI client (no key) to call it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield app, client


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app behind uvicorn on a loopback port, in this event loop; (app, base URL)."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout_s=30)
        assert server.started, "uvicorn did not start"
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def gateway_app(service_env) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with in_process(gateway_settings(service_env)) as (app, client):
        client.headers.update(ADMIN)
        yield app, client


@pytest.fixture
async def gateway(gateway_app) -> httpx.AsyncClient:
    """An ASGI client of the gateway calling with the bootstrap admin key."""
    return gateway_app[1]


@pytest.fixture
async def live_gateway(service_env) -> AsyncIterator[tuple[FastAPI, str]]:
    async with served(gateway_settings(service_env)) as found:
        yield found


def make_post(job_id: str, **overrides: object) -> PostGenerated:
    """A finished post for `job_id`, as the generator would publish it."""
    values: dict[str, Any] = {
        "job_id": job_id,
        "post_id": new_event_id(),
        "source_url": "https://example.com/post",
        "language": "ko",
        "title": "T",
        "slug": "t",
        "meta_description": "m",
        "markdown": "## A\n\nb",
        "html": "<h2>A</h2><p>b</p>",
        "keywords": ["seo"],
        "seo": SeoReport(score=70),
        "writer": "offline",
        "usage": Usage(),
    }
    return PostGenerated(**(values | overrides))


class Jobs:
    """Small steps the tests share: submit a job, wait for a state."""

    good = GOOD
    admin = ADMIN
    admin_key = ADMIN_KEY
    settings = staticmethod(gateway_settings)
    in_process = staticmethod(in_process)
    served = staticmethod(served)
    post = staticmethod(make_post)

    @staticmethod
    async def submit(client: httpx.AsyncClient, **overrides: object) -> dict:
        response = await client.post("/v1/jobs", json=GOOD | overrides)
        assert response.status_code == 202, response.text
        body: dict = response.json()
        return body

    @staticmethod
    async def wait_for_state(client: httpx.AsyncClient, job_id: str, state: str) -> dict:
        async def reached() -> dict | None:
            body = (await client.get(f"/v1/jobs/{job_id}")).json()
            return body if body["state"] == state else None

        found: dict = await wait_until(reached)
        return found


@pytest.fixture
def jobs() -> type[Jobs]:
    return Jobs


@dataclass
class Receiver:
    """A local HTTP server standing in for a customer's webhook endpoint."""

    fail_first: int = 0
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.calls.append((headers, body))
        status = 500 if len(self.calls) <= self.fail_first else 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(found, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started)
    found.url = f"http://127.0.0.1:{port}/hooks/seoblog"
    yield found
    server.should_exit = True
    await task
