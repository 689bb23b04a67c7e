"""A gateway started while PostgreSQL is down stays up: /healthz answers, /readyz and the API
answer 503 with Retry-After (never 500), and it becomes ready once PostgreSQL answers."""

from __future__ import annotations

import httpx
import pytest

from seoblog_testing import wait_until
from seoblog_testing.processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow


async def test_gateway_started_before_postgres_serves_503s_and_does_not_exit(service_env):
    env = service_env | {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "GATEWAY_OPEN_MODE": "true",
        "GATEWAY_CONNECT_TIMEOUT_S": "1",
        "GATEWAY_CONNECT_RETRY_INITIAL_S": "0.2",
        "GATEWAY_CONNECT_RETRY_MAX_S": "1",
    }
    gateway = ServiceProcess("gateway", free_port(), env)
    gateway.start()
    assert gateway.process is not None
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as client:

            async def live() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert gateway.process is not None
                    assert gateway.process.poll() is None, gateway.output()
                    return False

            await wait_until(live, timeout_s=30)
            assert (await client.get("/readyz")).status_code == 503
            submitted = await client.post(
                "/v1/jobs", json={"url": "https://example.org/a", "keywords": ["a"]}
            )
            assert submitted.status_code == 503, submitted.text
            assert submitted.headers["retry-after"]
            listed = await client.get("/v1/jobs")
            assert listed.status_code == 503, listed.text
            assert gateway.process.poll() is None, gateway.output()
    finally:
        gateway.stop()
    logs = gateway.output()
    assert "Application startup failed" not in logs
    assert '"internal_error"' not in logs
