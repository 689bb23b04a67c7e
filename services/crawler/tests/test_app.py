"""The crawler's composition: extraction workers warmed at start-up (readiness waits for them),
and a service process that leaves the extractor to its workers."""

import subprocess
import sys

import httpx

from crawler.app import create_app
from crawler.settings import Settings
from seoblog_testing import running_app, settings_for, wait_until


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
