"""pytest plugin: real infrastructure (found or started), unique names per test, and the
stand-ins for the outside world (fake LLM, fixture web site, OTLP collector)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient

if TYPE_CHECKING:
    from seoblog_devstack.infra import Infra

    from .fake_llm import FakeLLM
    from .otlp import OtlpCollector
    from .site import FixtureSite

REPO_ROOT = Path(__file__).resolve().parents[4]

# One event-signing key per test session: every service under test signs and verifies with it,
# and tests that publish by hand sign with it too (seoblog_testing.events.signed_headers).
EVENT_KEY = secrets.token_hex(32)


def unique_name(prefix: str = "t") -> str:
    """A short name no other test (or test run) uses: for namespaces, schemas, keys."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """NATS, PostgreSQL and Redis: the configured ones when they answer, else embedded ones."""
    from seoblog_devstack.infra import ensure_infra, stop_infra

    found = ensure_infra(REPO_ROOT / ".seoblog" / f"test-{os.getpid()}", embedded_redis=True)
    try:
        yield found
    finally:
        stop_infra(found)


async def drop_namespace(infra: Infra, ns: str) -> None:
    """Remove what a test namespace created: its streams and its schemas."""
    from seoblog_contracts import Subjects

    subjects = Subjects(ns)
    with contextlib.suppress(Exception):
        nc = await nats.connect(infra.nats_url)
        js = nc.jetstream()
        for stream in (subjects.stream, subjects.dlq_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(infra.database_url)
        schemas = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{ns}\\_%"
        )
        for row in schemas:
            await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        await conn.close()


def env_for(infra: Infra, ns: str) -> dict[str, str]:
    """Environment for services under test: our infrastructure, one namespace, quick retries."""
    return {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url or "",
        "SEOBLOG_NAMESPACE": ns,
        "SEOBLOG_EVENT_KEY": EVENT_KEY,
        "LOG_LEVEL": "INFO",
        "OTEL_TRACES_EXPORTER": "none",
        # Test web sites and fake LLMs listen on loopback, which a crawler refuses by default.
        "CRAWLER_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
        "GATEWAY_OPEN_MODE": "1",  # system tests and the CLI call the API without a key
    }


@pytest.fixture
async def namespace(infra: Infra) -> AsyncIterator[str]:
    """A namespace of our own: subjects, streams, schemas and cache keys; removed afterwards."""
    ns = unique_name()
    yield ns
    await drop_namespace(infra, ns)


@pytest.fixture
def service_env(infra: Infra, namespace: str) -> dict[str, str]:
    return env_for(infra, namespace)


def settings_for(cls: type[Any], env: dict[str, str], **overrides: Any) -> Any:
    """Build a service's Settings from a test environment, with fast retries by default."""
    values: dict[str, Any] = {
        "nats_url": env["NATS_URL"],
        "database_url": env["DATABASE_URL"],
        "redis_url": env.get("REDIS_URL") or None,
        "namespace": env["SEOBLOG_NAMESPACE"],
        "event_key": env.get("SEOBLOG_EVENT_KEY") or None,
        "retry_backoff_s": [0.1, 0.2],
        "max_deliver": 3,
        "ack_wait_s": 5.0,
        "progress_interval_s": 0,  # tests count progress steps; the gate has its own tests
        "llm_stream_after_s": 0,  # always stream, as tests of progress expect
    }
    values.update(overrides)
    return cls(_env_file=None, **values)


@pytest.fixture
async def nats_client(infra: Infra) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(infra.nats_url)
    yield nc
    await nc.close()


@pytest.fixture
async def pg(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(infra.database_url)
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    from .fake_llm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="session")
def fixture_site() -> Iterator[FixtureSite]:
    from .site import FixtureSite

    with FixtureSite() as site:
        yield site


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[OtlpCollector]:
    from .otlp import OtlpCollector

    with OtlpCollector() as collector:
        yield collector


async def wait_until(predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll a (sync or async) predicate until it returns something truthy, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


@pytest.fixture
async def events(namespace: str, nats_client: NatsClient) -> AsyncIterator[Any]:
    """Every message published in the test's namespace, including dead letters."""
    from seoblog_contracts import Subjects

    from .events import EventRecorder

    recorder = EventRecorder(Subjects(namespace))
    await recorder.start(nats_client)
    yield recorder
    await recorder.stop()


@pytest.fixture
async def bus(service_env: dict[str, str]) -> AsyncIterator[Any]:
    """A connected bus in the test's namespace, for publishing events at a service under test."""
    from seoblog_runtime import Bus, ServiceSettings

    probe = Bus(settings_for(ServiceSettings, service_env, service="probe"))
    await probe.broker.connect()
    yield probe
    await probe.stop()


@contextlib.asynccontextmanager
async def running_app(app: Any) -> AsyncIterator[Any]:
    """A service's app with its real lifespan (broker, store, cache) open for the block."""
    async with app.router.lifespan_context(app):
        yield app


def fake_llm_settings(fake_llm: FakeLLM, model: str = "fake-llm") -> dict[str, Any]:
    """Settings overrides pointing an LLM-using service at the fake provider."""
    return {"llm_base_url": fake_llm.base_url, "llm_api_key": fake_llm.api_key, "llm_model": model}
