"""py-spy on the gateway alone under the bench's submit or status load (issue 8):

    uv run python bench/perf/profile_gateway.py submit /tmp/prof-gw   # or: status

Starts the gateway as `bench/run.py` does (API key, rate limiter, pool 8, nothing else
consuming), loads it at 16 connections for 8 s under `py-spy record`, and writes
`DIR/gateway-<what>.txt` (collapsed stacks) and `.top.txt` (where the busy samples went)."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import sys
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from perf.load import raw_request, run_load  # noqa: E402
from perf.procs import Proc, tree_cpu_seconds  # noqa: E402
from perf.profile import Profiles  # noqa: E402
from perf.system import drop_everything, service_env  # noqa: E402
from seoblog_devstack.infra import ensure_infra, free_port  # noqa: E402
from seoblog_testing import unique_name  # noqa: E402

SPEC = {"keywords": ["science", "research"], "target_language": "de", "length": 600}


async def load(port: int, key: str, what: str, pid: int, out: Path, seconds: float) -> None:
    body = json.dumps({"url": "https://example.com/blog/a", **SPEC}).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        made = await client.post(
            f"http://127.0.0.1:{port}/v1/jobs",
            content=body,
            headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        made.raise_for_status()
        job_id = made.json()["id"]
    raw = (
        raw_request("POST", "/v1/jobs", body, key)
        if what == "submit"
        else raw_request("GET", f"/v1/jobs/{job_id}", b"", key)
    )
    cpu = functools.partial(tree_cpu_seconds, pid)
    await run_load(port, raw, 16, 2.0, cpu)  # warm-up
    profiles = Profiles(out, {f"gateway-{what}": pid})
    try:
        result = await run_load(port, raw, 16, seconds, cpu)
    finally:
        profiles.stop()
    sys.stdout.write(
        f"{what}: {result.rps:.0f} req/s, {result.cpu_ms_per_request:.2f} ms CPU/req "
        f"(sampled), errors {result.errors}\n"
    )


def main() -> None:
    what, out = sys.argv[1], Path(sys.argv[2])
    infra = ensure_infra(ROOT / ".seoblog" / "bench", embedded_redis=True)
    ns = unique_name("benchgw")
    key = "sk_seo_" + secrets.token_urlsafe(32)
    port = free_port()
    env = service_env(infra, ns, "http://127.0.0.1:9/v1", "unused", "WARNING", 8) | {
        "GATEWAY_PORT": str(port),
        "GATEWAY_OPEN_MODE": "0",
        "GATEWAY_ADMIN_KEY": key,
    }
    gw = Proc("gateway", [sys.executable, "-m", "gateway"], env, out / "gateway.log")
    out.mkdir(parents=True, exist_ok=True)
    gw.start()
    try:
        deadline = 90.0
        with httpx.Client(timeout=1) as client:
            import time

            began = time.monotonic()
            while time.monotonic() - began < deadline:
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        asyncio.run(load(port, key, what, gw.pid, out, 8.0))
    finally:
        gw.stop()
        asyncio.run(drop_everything(infra, ns))
    sys.stdout.write((out / f"gateway-{what}.top.txt").read_text())


if __name__ == "__main__":
    main()
