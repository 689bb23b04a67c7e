"""Gateway benchmark: requests a second and p50/p99 latency of submitting a job and reading
its status under concurrency, next to a bare ASGI app on the same server (uvicorn, same
settings) and machine in the same run: the ceiling. Ratios are gateway / bare.

Both run as processes of their own; the gateway with its real NATS, PostgreSQL and Redis
(found or embedded, like `make test`) and an API key (auth and the Redis rate limiter on the
path). The load comes from a small keep-alive HTTP/1.1 client in this process.

    uv run python bench/gateway/run.py [--seconds 5] [--concurrency 16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from seoblog_devstack.infra import ensure_infra, free_port, stop_infra
from seoblog_testing import drop_namespace, unique_name

ROOT = Path(__file__).resolve().parents[2]
JOB = {"url": "https://example.com/blog/a", "keywords": ["seo"], "target_language": "ko"}


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough HTTP for the benchmark."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        """The response status; 0 when the connection dropped (it is reopened next time)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await self.reader.readexactly(length)
        except (ConnectionError, asyncio.IncompleteReadError):
            await self.close()
            return 0
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def http_request(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def load(port: int, raw: bytes, concurrency: int, seconds: float) -> Result:
    """`concurrency` connections sending `raw` back to back for `seconds` (after a warm-up)."""
    connections = [Connection(port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while True:
            started = time.perf_counter()
            if measuring and started >= stop_at:
                return
            status = await conn.request(raw)
            if measuring:
                latencies.append(time.perf_counter() - started)
                if status >= 400 or status == 0:  # 0: the connection dropped
                    errors += 1

    tasks = [asyncio.create_task(worker(c)) for c in connections]
    await asyncio.sleep(min(1.0, seconds / 3))  # warm-up: connections, pools, caches
    measuring = True
    begun = time.perf_counter()
    stop_at = begun + seconds
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begun
    for c in connections:
        await c.close()
    return Result(len(latencies), errors, elapsed, latencies)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not become ready:\n{log.read_text()[-3000:]}")


def row(name: str, c: int, gw: Result, bare: Result) -> str:
    return (
        f"| {name} | {c} | {gw.rps:,.0f} | {gw.pct(0.5):.1f} | {gw.pct(0.99):.1f} "
        f"| {bare.rps:,.0f} | {bare.pct(0.5):.1f} | {bare.pct(0.99):.1f} "
        f"| {gw.rps / bare.rps:.2f} | {gw.pct(0.99) / bare.pct(0.99):.1f} | {gw.errors} |"
    )


async def measure(gw_port: int, bare_port: int, key: str, args: argparse.Namespace) -> list[str]:
    body = json.dumps(JOB).encode()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_port}") as client:
        made = await client.post("/v1/jobs", json=JOB, headers={"Authorization": f"Bearer {key}"})
        made.raise_for_status()
        job_id = made.json()["id"]
    rows = []
    for c in args.concurrency:
        for name, method, path, payload in (
            ("submit `POST /v1/jobs`", "POST", "/v1/jobs", body),
            ("status `GET /v1/jobs/{id}`", "GET", f"/v1/jobs/{job_id}", b""),
        ):
            raw = http_request(method, path, key, payload)
            gw = await load(gw_port, raw, c, args.seconds)
            bare = await load(bare_port, raw, c, args.seconds)
            rows.append(row(name, c, gw, bare))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[16, 64],
        help="connections at once, comma-separated",
    )
    args = parser.parse_args()
    infra = ensure_infra(ROOT / ".seoblog" / "bench", embedded_redis=True)
    ns = unique_name("bench")
    key = "sk_seo_" + secrets.token_urlsafe(32)
    gw_port, bare_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = os.environ | {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url or "",
        "SEOBLOG_NAMESPACE": ns,
        "LOG_LEVEL": "WARNING",
        "OTEL_TRACES_EXPORTER": "none",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gw_port),
        "GATEWAY_ADMIN_KEY": key,
        "GATEWAY_OPEN_MODE": "0",
        "GATEWAY_RATE_PER_S": "1000000",
        "GATEWAY_RATE_BURST": "1000000",
        "GATEWAY_JOBS_PER_S": "1000000",
        "GATEWAY_JOBS_BURST": "1000000",
    }
    gateway = start([sys.executable, "-m", "gateway"], env, logs / "gateway.log")
    bare = start(
        [sys.executable, str(Path(__file__).with_name("bare.py")), str(bare_port)],
        env,
        logs / "bare.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{gw_port}/readyz", gateway, logs / "gateway.log")
        wait_ready(f"http://127.0.0.1:{bare_port}/", bare, logs / "bare.log")
        rows = asyncio.run(measure(gw_port, bare_port, key, args))
    finally:
        for process in (gateway, bare):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(drop_namespace(infra, ns))
        stop_infra(infra)
    cpus = os.cpu_count()
    redis = "Redis" if infra.redis_url else "no Redis"
    print(  # noqa: T201 - a benchmark prints its table
        f"\nGateway vs a bare ASGI app, uvicorn, {cpus} CPUs, {args.seconds:g} s a cell, "
        f"NATS + PostgreSQL + {redis}, one process each\n\n"
        "| request | conc. | gateway req/s | p50 ms | p99 ms | bare req/s | p50 ms | p99 ms "
        "| req/s ratio | p99 ratio | gateway errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
    )


if __name__ == "__main__":
    main()
