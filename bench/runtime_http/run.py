"""What the HTTP server costs per request: uvicorn on uvloop + httptools (what `serve` picks)
against asyncio + h11 (uvicorn's defaults), in server CPU milliseconds per GET /healthz of a
service's ops app, measured from outside the server process.

    uv run python bench/runtime_http/run.py [--requests 3000] [--connections 16] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
import psutil

from seoblog_testing.processes import free_port

SERVER = """
import sys, uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from seoblog_runtime import add_ops_routes
app = FastAPI()
add_ops_routes(app, CollectorRegistry(), {})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop=sys.argv[2], http=sys.argv[3],
            log_level="warning", access_log=False)
"""

STACKS = {"baseline": ("asyncio", "h11"), "serve": ("uvloop", "httptools")}


async def load(url: str, requests: int, connections: int) -> None:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        left = iter(range(requests))

        async def worker() -> None:
            for _ in left:
                (await client.get("/healthz")).raise_for_status()

        await asyncio.gather(*(worker() for _ in range(connections)))


def measure(stack: str, args: argparse.Namespace) -> float:
    port = free_port()
    loop, http = STACKS[stack]
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), loop, http])  # noqa: S603
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        asyncio.run(load(url, 200, args.connections))  # warm
        proc = psutil.Process(server.pid)
        before = sum(proc.cpu_times()[:2])
        asyncio.run(load(url, args.requests, args.connections))
        return (sum(proc.cpu_times()[:2]) - before) * 1000 / args.requests
    finally:
        server.terminate()
        server.wait(10)


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    samples: dict[str, list[float]] = {name: [] for name in STACKS}
    for _ in range(args.reps):
        for name in STACKS:
            samples[name].append(measure(name, args))
    base = statistics.median(samples["baseline"])
    return [
        {
            "name": f"runtime_http.{name}.server_cpu_ms_per_request",
            "value": round(statistics.median(values), 4),
            "min": round(min(values), 4),
            "baseline": round(base, 4),
            "ratio": round(statistics.median(values) / base, 3),
            "unit": "ms server CPU per GET /healthz",
        }
        for name, values in samples.items()
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    options = parser.parse_args()
    for row in main(options):
        if options.json:
            print(json.dumps(row))  # noqa: T201 - the bench's output
        else:
            print(  # noqa: T201
                f"{row['name']:<52} {row['value']:>8.4f} ms  min {row['min']:>8.4f}"
                f"  baseline {row['baseline']:>8.4f}  ratio {row['ratio']:.2f}"
            )
