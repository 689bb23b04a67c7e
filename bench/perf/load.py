"""A lean keep-alive HTTP/1.1 load generator (asyncio streams, one request in flight per
connection) that also reads the server's CPU time over the measured window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    server_cpu_s: float
    client_cpu_s: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else float("nan")

    @property
    def client_busy(self) -> float:
        """Share of one core the client used: near 1.0 would make it the bottleneck."""
        return self.client_cpu_s / self.seconds if self.seconds else 0.0

    def pct_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raw_request(method: str, path: str, body: bytes = b"", key: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        """The response status; 0 when the connection dropped (reopened next time)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length, close, chunked = 0, False, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                    await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            return 0
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def run_load(
    port: int,
    raw: bytes,
    connections: int,
    seconds: float,
    server_cpu: Callable[[], float],
    warmup_s: float = 0.5,
) -> Load:
    """`connections` connections sending `raw` back to back: a warm-up, then `seconds`."""
    conns = [_Connection(port) for _ in range(connections)]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = float("inf")

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            status = await conn.request(raw)
            if measuring:
                latencies.append(time.perf_counter() - began)
                if status == 0 or status >= 400:
                    errors += 1

    tasks = [asyncio.create_task(worker(c)) for c in conns]
    try:
        await asyncio.sleep(warmup_s)
        measuring = True
        cpu0, client0, began = server_cpu(), time.process_time(), time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        cpu1, client1 = server_cpu(), time.process_time()
    finally:
        stop_at = 0.0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in conns:
            await c.close()
    return Load(len(latencies), errors, elapsed, cpu1 - cpu0, client1 - client0, latencies)
