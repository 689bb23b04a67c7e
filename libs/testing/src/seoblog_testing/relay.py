"""A TCP relay to the session's PostgreSQL on a port of the test's choosing: what a test opens
to make "PostgreSQL comes up" happen on a port a service was already told to use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit


@contextlib.asynccontextmanager
async def postgres_relay(database_url: str, port: int) -> AsyncIterator[None]:
    """Relay 127.0.0.1:`port` to the PostgreSQL of `database_url` (TCP, or the unix socket the
    embedded server listens on) for the block."""
    target = urlsplit(database_url)
    query = dict(parse_qsl(target.query))
    socket_dir = None if target.hostname else query.get("host")
    host = target.hostname or "127.0.0.1"
    real_port = int(query.get("port") or target.port or 5432)

    async def upstream() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if socket_dir:
            return await asyncio.open_unix_connection(
                str(Path(socket_dir) / f".s.PGSQL.{real_port}")
            )
        return await asyncio.open_connection(host, real_port)

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await upstream()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
