"""A service started before PostgreSQL and NATS serves /healthz, reports what is missing on
/readyz, retries with logged back-off, and becomes ready once its dependencies are up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from seoblog_devstack.infra import nats_server_binary
from seoblog_runtime import ServiceSettings, Store, build_parts
from seoblog_testing import settings_for, wait_until
from seoblog_testing.processes import ServiceProcess, free_port
from seoblog_testing.relay import postgres_relay

pytestmark = pytest.mark.slow

SECRET = "pw-never-logged-7f3a"  # PostgreSQL trusts loopback, so a password is accepted and unused


@contextlib.contextmanager
def nats_on(port: int):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as store:
        process = subprocess.Popen(
            [str(nats_server_binary()), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            process.terminate()
            process.wait(10)


async def readiness(client: httpx.AsyncClient) -> httpx.Response | None:
    try:
        return await client.get("/readyz")
    except httpx.TransportError:
        return None


async def test_service_started_before_postgres_and_nats_waits_then_becomes_ready(
    service_env, infra
):
    pg_port, nats_port = free_port(), free_port()
    env = service_env | {
        "DATABASE_URL": f"postgresql://postgres:{SECRET}@127.0.0.1:{pg_port}/postgres",
        "NATS_URL": f"nats://127.0.0.1:{nats_port}",
        "TRANSLATOR_CONNECT_TIMEOUT_S": "1",
        "TRANSLATOR_CONNECT_RETRY_INITIAL_S": "0.2",
        "TRANSLATOR_CONNECT_RETRY_MAX_S": "1",
    }
    service = ServiceProcess("translator", free_port(), env)
    service.start()
    assert service.process is not None
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:

            async def live() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert service.process is not None
                    assert service.process.poll() is None, service.output()
                    return False

            await wait_until(live, timeout_s=30)
            await asyncio.sleep(2)  # several attempts fail meanwhile; it must stay up
            assert service.process.poll() is None, service.output()
            waiting = await client.get("/readyz")
            assert waiting.status_code == 503
            assert set(waiting.json()["missing"]) == {"postgres", "nats"}

            async with postgres_relay(infra.database_url, pg_port):

                async def postgres_seen() -> bool:
                    r = await readiness(client)
                    return r is not None and r.json()["checks"]["postgres"] is True

                await wait_until(postgres_seen, timeout_s=30)
                still = await client.get("/readyz")
                assert still.status_code == 503
                assert still.json()["missing"] == ["nats"]

                with nats_on(nats_port):

                    async def ready() -> bool:
                        r = await readiness(client)
                        return r is not None and r.status_code == 200

                    await wait_until(ready, timeout_s=40)
                    assert service.process.poll() is None
                    service.process.send_signal(signal.SIGTERM)
                    # uvicorn re-raises SIGTERM once it has shut down cleanly
                    assert await asyncio.to_thread(service.process.wait, 20) == -signal.SIGTERM
    finally:
        service.stop()
    logs = service.output()
    assert "Application shutdown complete" in logs
    assert "Traceback" not in logs
    assert "Application startup failed" not in logs
    assert SECRET not in logs
    assert "dependency unavailable" in logs
    assert '"dependency": "postgres"' in logs
    assert '"dependency": "nats"' in logs


async def test_service_waiting_for_its_dependencies_stops_cleanly(service_env):
    env = service_env | {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "TRANSLATOR_CONNECT_TIMEOUT_S": "1",
    }
    service = ServiceProcess("translator", free_port(), env)
    service.start()
    assert service.process is not None
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:

            async def live() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert service.process is not None
                    assert service.process.poll() is None, service.output()
                    return False

            await wait_until(live, timeout_s=30)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(15) == -signal.SIGTERM, service.output()
    finally:
        service.stop()
    logs = service.output()
    assert "Application shutdown complete" in logs
    assert "Traceback" not in logs
    assert '"level": "error"' not in logs


async def test_start_hooks_run_once_the_dependencies_answer_and_a_failing_hook_is_retried(
    service_env, infra
):
    migrations = Path(__file__).parent / "migrations_ok"
    pg_port = free_port()
    settings = settings_for(
        ServiceSettings,
        service_env,
        service="probe",
        database_url=f"postgresql://postgres@127.0.0.1:{pg_port}/postgres",
        connect_timeout_s=1,
        connect_retry_initial_s=0.1,
        connect_retry_max_s=0.5,
    )
    parts = build_parts(
        settings, lambda url, schema, pool_max: Store(url, schema, migrations, pool_max=pool_max)
    )
    calls: list[str] = []

    async def flaky_hook() -> None:
        calls.append("flaky")
        if len(calls) == 1:
            raise RuntimeError("not yet")

    async def second_hook() -> None:
        calls.append("second")

    parts.on_start += [flaky_hook, second_hook]
    async with parts.running():
        await asyncio.sleep(0.5)
        assert not parts.ready.is_set()
        assert calls == []  # nothing runs before the store is open
        assert not await parts.readiness_checks()["postgres"]()
        async with postgres_relay(infra.database_url, pg_port):
            await wait_until(parts.ready.is_set, timeout_s=30)
            assert calls == ["flaky", "flaky", "second"]  # resumed at the hook that failed
            assert await parts.readiness_checks()["nats"]()
            assert await parts.store.pool.fetchval("SELECT count(*) FROM widgets") == 0
