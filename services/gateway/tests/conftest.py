"""The gateway in-process (its real lifespan: NATS, PostgreSQL, Redis): over ASGI for plain
requests, and behind a real uvicorn socket for streams, WebSockets and the browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings
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


class Jobs:
    """Small steps the tests share: submit a job, wait for a state."""

    good = GOOD
    admin = ADMIN
    admin_key = ADMIN_KEY
    settings = staticmethod(gateway_settings)
    in_process = staticmethod(in_process)
    served = staticmethod(served)

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
