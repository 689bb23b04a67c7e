"""A record of something already paid for is written once PostgreSQL answers again, not
dropped: write_until_stored against a real PostgreSQL that is unreachable for a while."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import pytest

from seoblog_runtime.store import write_until_stored
from seoblog_testing.processes import free_port


async def test_a_write_waits_out_an_unreachable_database_and_then_succeeds(infra) -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    relay: asyncio.Server | None = None

    async def write() -> int:
        conn = await asyncpg.connect(url, timeout=1)
        try:
            return int(await conn.fetchval("SELECT 41 + 1"))
        finally:
            await conn.close()

    async def open_relay_later() -> None:
        nonlocal relay
        await asyncio.sleep(1.0)  # the database "restarts" for a second
        relay = await _relay_to(infra.database_url, port)

    opener = asyncio.create_task(open_relay_later())
    try:
        assert await write_until_stored(write, what="test", give_up_s=20) == 42
    finally:
        await opener
        if relay is not None:
            relay.close()


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


async def _relay_to(database_url: str, port: int) -> asyncio.Server:
    """A TCP relay on `port` to the session's PostgreSQL (unix socket or TCP)."""
    from urllib.parse import parse_qsl, urlsplit

    target = urlsplit(database_url)
    query = dict(parse_qsl(target.query))
    socket_dir = None if target.hostname else query.get("host")
    real_port = int(query.get("port") or target.port or 5432)

    async def upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if socket_dir:
            return await asyncio.open_unix_connection(
                str(Path(socket_dir) / f".s.PGSQL.{real_port}")
            )
        return await asyncio.open_connection(target.hostname, real_port)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await upstream()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)
