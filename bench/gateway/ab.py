"""A/B of the gateway: an older revision of its code (`--old`, a git revision; its
services/gateway/src taken out with `git archive`, no work tree) against the code on disk,
beside the bare FastAPI app (bench/perf/bare_api.py), all three running at once and loaded in
turns (old, new, bare; `--rounds` times), so a shared machine's drift hits all three alike.

    uv run python bench/gateway/ab.py [--old HEAD] [--rounds 3] [--seconds 3] [--jobs 150]

Per route and connection count: req/s as a ratio to bare and server CPU per request (min and
median over the rounds). Then the per-job projection: each gateway gets `--jobs` submitted
jobs and then the events a pipeline publishes for them (progress of every stage and the post,
signed like the services sign them), and the figure is the gateway's CPU until all are
completed, per job."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from perf.load import Load, raw_request, run_load  # noqa: E402
from perf.procs import Proc, tree_cpu_seconds  # noqa: E402
from perf.profile import Profiles  # noqa: E402
from perf.revision import tree_at  # noqa: E402
from perf.system import drop_everything, service_env  # noqa: E402

from seoblog_devstack.infra import Infra, ensure_infra, free_port  # noqa: E402
from seoblog_testing import unique_name  # noqa: E402

SPEC = {"keywords": ["science", "research"], "target_language": "de", "length": 600}


def old_tree(rev: str) -> Path:
    """services/gateway/src of `rev`, extracted to a temporary directory."""
    return tree_at(rev, "services/gateway/src", Path(tempfile.mkdtemp(prefix="gw-old-")))


class Side:
    def __init__(self, name: str, proc: Proc, port: int, ns: str, key: str | None) -> None:
        self.name, self.proc, self.port, self.ns, self.key = name, proc, port, ns, key
        self.job_id = ""


def start_sides(infra: Infra, logs: Path, old_src: Path) -> list[Side]:
    key = "sk_seo_" + secrets.token_urlsafe(32)
    sides = []
    for name in ("old", "new", "bare"):
        ns = unique_name(f"ab{name}")
        port = free_port()
        env = service_env(infra, ns, "http://127.0.0.1:9/v1", "unused", "WARNING", 8) | {
            "GATEWAY_PORT": str(port),
            "GATEWAY_OPEN_MODE": "0",
            "GATEWAY_ADMIN_KEY": key,
            "BARE_POOL": "8",
        }
        if name == "old":
            env["PYTHONPATH"] = os.pathsep.join(
                [str(old_src), *filter(None, [env.get("PYTHONPATH")])]
            )
        cmd = (
            [sys.executable, str(BENCH / "perf" / "bare_api.py"), str(port)]
            if name == "bare"
            else [sys.executable, "-m", "gateway"]
        )
        proc = Proc(name, cmd, env, logs / f"{name}.log").start()
        sides.append(Side(name, proc, port, ns, None if name == "bare" else key))
    return sides


def wait_ready(side: Side, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not side.proc.alive():
            sys.exit(f"{side.name} exited:\n{side.proc.tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{side.port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{side.name} did not become ready:\n{side.proc.tail()}")


def body() -> bytes:
    return json.dumps({"url": "https://example.com/blog/a", **SPEC}).encode()


async def first_jobs(sides: list[Side]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for side in sides:
            headers = {"content-type": "application/json"}
            if side.key:
                headers["Authorization"] = f"Bearer {side.key}"
            made = await client.post(
                f"http://127.0.0.1:{side.port}/v1/jobs", content=body(), headers=headers
            )
            made.raise_for_status()
            side.job_id = made.json()["id"]


async def routes(
    sides: list[Side], rounds: int, seconds: float, conns: list[int]
) -> dict[tuple[str, int, str], list[Load]]:
    await first_jobs(sides)
    out: dict[tuple[str, int, str], list[Load]] = {}
    for side in sides:  # warm-up: connections, pools, caches
        for what in ("submit", "status"):
            await run_load(side.port, request(side, what), 16, 1.0, lambda: 0.0)
    for _ in range(rounds):
        for c in conns:
            for what in ("submit", "status"):
                for side in sides:
                    cpu = functools.partial(tree_cpu_seconds, side.proc.pid)
                    result = await run_load(side.port, request(side, what), c, seconds, cpu)
                    out.setdefault((what, c, side.name), []).append(result)
    return out


def request(side: Side, what: str) -> bytes:
    raw: bytes = (
        raw_request("POST", "/v1/jobs", body(), side.key)
        if what == "submit"
        else raw_request("GET", f"/v1/jobs/{side.job_id}", b"", side.key)
    )
    return raw


def report_routes(loads: dict[tuple[str, int, str], list[Load]], conns: list[int]) -> None:
    print(  # noqa: T201 - a benchmark prints its table
        "\n| route | conns | side | req/s (median) | ratio to bare min / median "
        "| CPU ms/req min / median | CPU × bare (median) | errors |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|"
    )
    for what in ("submit", "status"):
        for c in conns:
            bare = out_of(loads, what, c, "bare")
            bare_cpu = statistics.median(x.cpu_ms_per_request for x in bare)
            for name in ("old", "new", "bare"):
                runs = out_of(loads, what, c, name)
                # each round's ratio to the bare turn of the same round
                ratios = [r.rps / b.rps for r, b in zip(runs, bare, strict=True)]
                cpu = [r.cpu_ms_per_request for r in runs]
                print(  # noqa: T201
                    f"| {what} | {c} | {name} | {statistics.median(r.rps for r in runs):,.0f} "
                    f"| {min(ratios):.2f} / {statistics.median(ratios):.2f} "
                    f"| {min(cpu):.2f} / {statistics.median(cpu):.2f} "
                    f"| {statistics.median(cpu) / bare_cpu:.2f} "
                    f"| {sum(r.errors for r in runs)} |"
                )


def out_of(loads: dict[tuple[str, int, str], list[Load]], what: str, c: int, name: str) -> Any:
    return loads[(what, c, name)]


# -- the projection --------------------------------------------------------------------------


async def projection(
    infra: Infra, sides: list[Side], jobs: int, rounds: int, rate: float, profile: Path | None
) -> None:
    from seoblog_contracts import JobProgress, PostGenerated, SeoReport, Stage, Usage
    from seoblog_runtime import Bus
    from seoblog_runtime.settings import ServiceSettings

    gateways = [s for s in sides if s.name != "bare"]
    figures: dict[str, list[float]] = {s.name: [] for s in gateways}
    for _ in range(rounds):
        for side in gateways:
            env = side.proc.env
            settings = ServiceSettings(
                service="abload",
                nats_url=env["NATS_URL"],
                namespace=side.ns,
                event_key=env["SEOBLOG_EVENT_KEY"],
            )
            bus = Bus(settings)
            await bus.start()
            ids = await submit_many(side, jobs)
            pool = await asyncpg.connect(infra.database_url)
            schema = f"{side.ns}_gateway"
            await asyncio.sleep(1.0)  # the submits' own events pass first
            profiles = (
                Profiles(profile, {f"projection-{side.name}": side.proc.pid}) if profile else None
            )
            print(f"projecting on {side.name} (pid {side.proc.pid})", flush=True)  # noqa: T201
            cpu0 = tree_cpu_seconds(side.proc.pid)
            began = time.perf_counter()
            pause = 1 / (rate * 7) if rate > 0 else 0.0
            for job_id in ids:
                steps: list[Any] = [
                    JobProgress(job_id=job_id, stage=Stage.CRAWL, percent=0, message="fetching"),
                    JobProgress(job_id=job_id, stage=Stage.TRANSLATE, percent=0),
                    JobProgress(job_id=job_id, stage=Stage.TRANSLATE, percent=50),
                    JobProgress(job_id=job_id, stage=Stage.GENERATE, percent=0),
                    JobProgress(job_id=job_id, stage=Stage.GENERATE, percent=40),
                    JobProgress(job_id=job_id, stage=Stage.GENERATE, percent=80),
                    PostGenerated(
                        job_id=job_id,
                        post_id=secrets.token_hex(16),
                        source_url="https://example.com/blog/a",
                        language="de",
                        title="T",
                        slug="t",
                        meta_description="m",
                        markdown="## A\n\n" + "b " * 2000,
                        html="<h2>A</h2><p>" + "b " * 2000 + "</p>",
                        keywords=["science"],
                        seo=SeoReport(score=70),
                        writer="offline",
                        usage=Usage(),
                    ),
                ]
                for event in steps:
                    await bus.publish(event)
                    if pause:
                        await asyncio.sleep(pause)
            while True:
                done = await pool.fetchval(
                    f'SELECT count(*) FROM "{schema}".jobs'  # noqa: S608 - our schema
                    " WHERE state = 'completed' AND job_id = ANY($1::text[])",
                    ids,
                )
                if done >= len(ids):
                    break
                if time.perf_counter() - began > 120:
                    sys.exit(f"{side.name}: only {done} of {len(ids)} jobs completed")
                await asyncio.sleep(0.05)
            cpu = tree_cpu_seconds(side.proc.pid) - cpu0
            if profiles is not None:
                profiles.stop()
            figures[side.name].append(1000 * cpu / len(ids))
            await pool.close()
            await bus.stop()
    print(  # noqa: T201
        f"\nprojection: gateway CPU per job ({jobs} jobs, 7 events each after the submit, "
        f"{f'{rate:g} jobs/s' if rate > 0 else 'as fast as they go'}), min / median over rounds"
    )
    for name, values in figures.items():
        print(  # noqa: T201
            f"  {name}: {min(values):.1f} / {statistics.median(values):.1f} ms"
            f"  (rounds: {', '.join(f'{v:.1f}' for v in values)})"
        )


async def submit_many(side: Side, n: int) -> list[str]:
    ids: list[str] = []
    headers = {"content-type": "application/json", "Authorization": f"Bearer {side.key}"}
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(i: int) -> None:
            spec = {"url": f"https://example.com/blog/{secrets.token_hex(6)}", **SPEC}
            made = await client.post(
                f"http://127.0.0.1:{side.port}/v1/jobs", json=spec, headers=headers
            )
            made.raise_for_status()
            ids.append(made.json()["id"])

        for start in range(0, n, 16):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 16))))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="HEAD", help="git revision of the old side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per turn")
    parser.add_argument("--conns", default="16,64")
    parser.add_argument("--jobs", type=int, default=60, help="projection: jobs per round")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="projection: jobs/s the events come at (0: all)"
    )
    parser.add_argument("--profile", type=Path, help="projection: py-spy profiles into DIR")
    parser.add_argument("--skip", default="", help="routes or projection, to leave out")
    args = parser.parse_args()
    conns = [int(x) for x in args.conns.split(",")]
    old_src = old_tree(args.old)
    infra = ensure_infra(ROOT / ".seoblog" / "bench", embedded_redis=True)
    logs = Path(tempfile.mkdtemp(prefix="gw-ab-"))
    sides = start_sides(infra, logs, old_src)
    try:
        for side in sides:
            wait_ready(side)
        print(f"old = {args.old} ({old_src}); new = the work tree; logs in {logs}")  # noqa: T201
        if "routes" not in args.skip:
            loads = asyncio.run(routes(sides, args.rounds, args.seconds, conns))
            report_routes(loads, conns)
        if "projection" not in args.skip:
            asyncio.run(projection(infra, sides, args.jobs, args.rounds, args.rate, args.profile))
    finally:
        for side in sides:
            side.proc.stop()
        for side in sides:
            asyncio.run(drop_everything(infra, side.ns))


if __name__ == "__main__":
    main()
