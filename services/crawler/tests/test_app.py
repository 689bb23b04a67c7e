"""The crawler's composition: extraction workers warmed at start-up (readiness waits for them),
and a service process that leaves the extractor to its workers."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from crawler.app import create_app
from crawler.settings import Settings
from seoblog_testing import running_app, settings_for, wait_until
from seoblog_testing.processes import free_port


async def readiness(app) -> dict:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://crawler") as client:
        return (await client.get("/readyz")).json()


async def test_readiness_waits_for_the_extraction_workers(service_env) -> None:
    settings: Settings = settings_for(Settings, service_env, extract_workers=2)
    app = create_app(settings)

    async with running_app(app):
        ready = await wait_until(lambda: _ready(app), timeout_s=60)
        workers = app.state.crawl_page.executor._processes  # the pool's own bookkeeping

    assert ready["checks"]["extractor"] is True
    assert len(workers) == 2


async def _ready(app) -> dict | None:
    body = await readiness(app)
    return body if body.get("ready") else None


def test_the_service_process_does_not_load_the_extractor() -> None:
    # Only the extraction workers need trafilatura (and its tens of MB); the service process
    # sends them pages and reads back Articles and ExtractionErrors.
    heavy = "{'trafilatura', 'lxml', 'htmldate', 'justext'}"
    code = f"import sys, crawler.app, crawler.handlers; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert out.strip() == "[]"


def processes_of(namespace: str) -> list[int]:
    """Every process on this machine running in `namespace` (its environment says so)."""
    marker = f"SEOBLOG_NAMESPACE={namespace}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_extraction_workers_leave_with_a_killed_service(service_env, namespace) -> None:
    port = free_port()
    env = os.environ | service_env | {"CRAWLER_PORT": str(port), "CRAWLER_EXTRACT_WORKERS": "2"}
    service = subprocess.Popen(  # noqa: ASYNC220 - Popen does not wait
        [sys.executable, "-m", "crawler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(ready, timeout_s=60, interval_s=0.1)
        assert len(processes_of(namespace)) >= 4  # service, forkserver, two workers (+ tracker)

        service.kill()  # SIGKILL: the service cannot stop its pool itself
        service.wait()

        await wait_until(lambda: not processes_of(namespace), timeout_s=15)
    finally:
        for pid in processes_of(namespace):
            os.kill(pid, signal.SIGKILL)
