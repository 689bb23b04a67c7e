"""A record of something already paid for is written once PostgreSQL answers again, not
dropped: write_until_stored against a real PostgreSQL that is unreachable for a while."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from seoblog_runtime.store import write_until_stored
from seoblog_testing.processes import free_port
from seoblog_testing.relay import postgres_relay


async def test_a_write_waits_out_an_unreachable_database_and_then_succeeds(infra) -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    opened = asyncio.Event()
    done = asyncio.Event()

    async def write() -> int:
        conn = await asyncpg.connect(url, timeout=1)
        try:
            return int(await conn.fetchval("SELECT 41 + 1"))
        finally:
            await conn.close()

    async def open_relay_later() -> None:
        await asyncio.sleep(1.0)  # the database "restarts" for a second
        async with postgres_relay(infra.database_url, port):
            opened.set()
            await done.wait()

    opener = asyncio.create_task(open_relay_later())
    try:
        assert await write_until_stored(write, what="test", give_up_s=20) == 42
        assert opened.is_set()
    finally:
        done.set()
        await opener


async def test_a_write_gives_up_after_its_bound() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nobody listens

    async def write() -> None:
        await asyncpg.connect(url, timeout=0.5)

    with pytest.raises(ConnectionRefusedError):
        await write_until_stored(write, what="test", give_up_s=0.5)


async def test_a_real_error_is_not_retried() -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        raise asyncpg.UniqueViolationError("duplicate")

    with pytest.raises(asyncpg.UniqueViolationError):
        await write_until_stored(write, what="test")
    assert calls == 1
