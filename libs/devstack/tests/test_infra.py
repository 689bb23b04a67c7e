"""ensure_infra finds the machine's NATS, PostgreSQL and Redis, or starts embedded ones."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path

import asyncpg
import nats
import pytest
import redis

from seoblog_devstack.infra import (
    Infra,
    ensure_infra,
    free_port,
    mask_url,
    nats_answers,
    process_running,
    stop_infra,
)


@pytest.fixture(autouse=True)
def no_forced_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEOBLOG_EMBEDDED", raising=False)


def test_ensure_infra_finds_the_nats_postgres_and_redis_that_answer(
    infra: Infra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session's infrastructure is what answers here: the machine's own servers, or the
    # embedded ones the plugin started on a machine that has none. Either way it is running.
    assert infra.redis_url is not None
    for name, value in (
        ("NATS_URL", infra.nats_url),
        ("DATABASE_URL", infra.database_url),
        ("REDIS_URL", infra.redis_url),
    ):
        monkeypatch.setenv(name, value)

    with ensure_infra(tmp_path) as found:
        assert found.started == []
        assert found.nats_url == infra.nats_url
        assert found.database_url == infra.database_url
        assert found.redis_url == infra.redis_url
        assert found.pids == {}


def test_ensure_infra_runs_without_redis_and_warns_when_redis_does_not_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = f"redis://127.0.0.1:{free_port()}/0"

    with caplog.at_level(logging.INFO, logger="seoblog.devstack"):
        infra = ensure_infra(tmp_path, redis_url=silent)
    stop_infra(infra)

    assert infra.redis_url is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no Redis" in r.getMessage() for r in warnings)


def test_ensure_infra_never_logs_a_password(
    infra: Infra, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Both the machine's PostgreSQL and the embedded one trust local connections, so the
    # password is accepted and ignored.
    user, rest = infra.database_url.removeprefix("postgresql://").split("@", 1)
    url = f"postgresql://{user}:hunter2secret@{rest}"

    with caplog.at_level(logging.INFO, logger="seoblog.devstack"):
        found = ensure_infra(tmp_path, database_url=url, nats_url=infra.nats_url, want_redis=False)
    stop_infra(found)

    assert found.started == []
    assert found.database_url == url
    assert f"{user}:***@" in caplog.text
    assert "hunter2secret" not in caplog.text


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert (
        mask_url("postgresql://u:p@db/x?sslmode=require")
        == "postgresql://u:***@db/x?sslmode=require"
    )
    assert mask_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"


async def _publish_to_a_fresh_stream(url: str) -> int:
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        name = f"DEVSTACK_{uuid.uuid4().hex[:8].upper()}"
        await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
        ack = await js.publish(f"{name.lower()}.hello", b"hi")
        return int(ack.seq)
    finally:
        await nc.close()


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return int(await conn.fetchval("select 1"))
    finally:
        await conn.close()


def _wait_until(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_seoblog_embedded_starts_nats_and_postgres_and_stop_infra_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEOBLOG_EMBEDDED", "1")

    infra = ensure_infra(tmp_path, want_redis=False)
    try:
        assert sorted(infra.started) == ["nats", "postgres"]
        assert infra.nats_url != "nats://127.0.0.1:4222"
        assert asyncio.run(_publish_to_a_fresh_stream(infra.nats_url)) == 1
        assert asyncio.run(_select_one(infra.database_url)) == 1
        pids = infra.pids
    finally:
        stop_infra(infra)

    assert _wait_until(lambda: not process_running(pids["nats"]))
    assert _wait_until(lambda: not process_running(pids["postgres"]))
    assert not nats_answers(infra.nats_url, timeout=0.5)
    assert infra.pids == {}
    stop_infra(infra)  # a second stop is harmless


@pytest.mark.slow
def test_embedded_redis_starts_when_asked_and_stops_cleanly(tmp_path, monkeypatch):
    monkeypatch.setenv("SEOBLOG_EMBEDDED", "1")
    found = ensure_infra(tmp_path, embedded_redis=True)
    try:
        assert "redis" in found.started
        assert found.redis_url is not None
        assert found.redis_url != "redis://127.0.0.1:6379/0"
        client = redis.Redis.from_url(found.redis_url)
        assert client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        pid = found.pids["redis"]
    finally:
        stop_infra(found)
    assert not process_running(pid)


@pytest.mark.slow
def test_embedded_servers_are_not_in_the_callers_process_group(tmp_path, monkeypatch):
    """A Ctrl-C at the terminal signals its whole foreground process group: servers in it
    stopped at once, before `seoblog up` had stopped the services that use them (which then
    logged broken connections). Out of the group, they are stopped after the services."""
    monkeypatch.setenv("SEOBLOG_EMBEDDED", "1")
    found = ensure_infra(tmp_path, embedded_redis=True)
    try:
        ours = os.getpgid(0)
        groups = {name: os.getpgid(pid) for name, pid in found.pids.items()}
        assert {"nats", "postgres", "redis"} <= groups.keys()
        assert ours not in groups.values(), groups
    finally:
        stop_infra(found)
