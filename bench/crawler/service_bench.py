"""Crawler as a real process (`python -m crawler`, its extraction workers included): seconds
until /readyz, the first job after start beside the next ones, and resident memory of the
whole process tree after every fixture page was crawled.

    uv run python bench/crawler/service_bench.py [--json] [--workers 0] [--rounds 1]

Jobs go in over JetStream as the gateway sends them; a job's time is from publish to its
page.crawled (or job.failed) event, fetched from a local fixture site serving the 121 pages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg

from seoblog_contracts import JobFailed, JobSpec, JobSubmitted, PageCrawled, Subjects, new_event_id
from seoblog_devstack.infra import ensure_infra, free_port, stop_infra
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing import settings_for, unique_name
from seoblog_testing.plugin import drop_namespace, env_for
from seoblog_testing.site import FixtureSite

ROOT = Path(__file__).resolve().parents[2]
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SEQUENTIAL = 8  # jobs one after another after the first, for "a later job"


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc."""
    found, todo = [pid], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in task.read_text().split()]
                found += kids
                todo += kids
    return found


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE / 2**20
    except OSError:
        return 0.0


def pss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def describe(pid: int) -> str:
    with contextlib.suppress(OSError):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return " ".join(a.decode(errors="replace") for a in args)[:90]
    return "?"


async def run_round(
    workers: int, log: Path, profile: str | None, settle_s: float
) -> dict[str, float]:
    infra = ensure_infra(ROOT / ".seoblog" / "bench-crawler", embedded_redis=True)
    ns = unique_name("benchcrawler")
    port = free_port()
    env = (
        dict(os.environ)
        | env_for(infra, ns)
        | {
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "CRAWLER_PORT": str(port),
            "CRAWLER_HOST": "127.0.0.1",
            "CRAWLER_HOST_RATE_PER_S": "100000",
            "CRAWLER_HOST_BURST": "100000",
            "CRAWLER_HOST_CONCURRENCY": "64",
            "CRAWLER_EXTRACT_WORKERS": str(workers),
        }
    )
    process: subprocess.Popen[bytes] | None = None
    nc = await nats.connect(infra.nats_url)
    done: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def on_outcome(msg: Msg) -> None:
        data = json.loads(msg.data)
        job_id = data.get("job_id")
        if job_id in done and not done[job_id].done():
            done[job_id].set_result(data)

    subjects = Subjects(ns)
    for event in (PageCrawled, JobFailed):
        await nc.subscribe(subjects.of(event), cb=on_outcome)
    bus = Bus(settings_for(ServiceSettings, env, service="bench"))
    try:
        with FixtureSite() as site, log.open("wb") as out:
            articles = site.article_ids()
            started = time.perf_counter()
            command = [sys.executable, "-m", "crawler"]
            if profile:  # py-spy over the crawler and its workers (memory figures: not ours)
                command = ["py-spy", "record", "-r", "100", "--subprocesses", "-f", "raw"]
                command += ["-o", profile, "--", sys.executable, "-m", "crawler"]
            process = subprocess.Popen(  # noqa: S603, ASYNC220 - ours; Popen does not wait
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
            ready_s = time.perf_counter() - started
            await bus.broker.connect()
            await asyncio.sleep(settle_s)

            metrics_url = f"http://127.0.0.1:{port}/metrics"

            async def extraction_s() -> float:
                async with httpx.AsyncClient() as client:
                    text = (await client.get(metrics_url)).text
                return sum(
                    float(line.split()[-1])
                    for line in text.splitlines()
                    if line.startswith("crawler_extraction_seconds_sum")
                )

            async def crawl(article: str, n: int) -> float:
                job = JobSubmitted(
                    job_id=new_event_id(),
                    spec=JobSpec(url=site.article_url(article) + f"?n={n}", keywords=["x"]),
                )
                done[job.job_id] = asyncio.get_running_loop().create_future()
                began = time.perf_counter()
                await bus.publish(job)
                outcome = await asyncio.wait_for(done[job.job_id], 120)
                fetches[n] = float(outcome.get("metadata", {}).get("fetch_ms") or 0)
                return time.perf_counter() - began

            # The first job and the next ones crawl the same page (at URLs of their own), so
            # they differ only in what the first one pays for being first.
            fetches: dict[int, float] = {}
            first = await crawl(articles[0], 0)
            first_extract_s = await extraction_s()
            later = [await crawl(articles[0], i) for i in range(1, SEQUENTIAL + 1)]
            later_extract_s = (await extraction_s() - first_extract_s) / SEQUENTIAL
            parts = {
                "first_fetch_ms": fetches[0],
                "later_fetch_ms": statistics.median(fetches[i] for i in range(1, SEQUENTIAL + 1)),
                "first_extract_ms": 1000 * first_extract_s,
                "later_extract_ms": 1000 * later_extract_s,
            }
            main = next(p for p in tree(process.pid) if describe(p).rstrip().endswith("-m crawler"))
            cpu_before = sum(cpu_s(p) for p in tree(process.pid))
            main_before = cpu_s(main)
            rest = list(range(SEQUENTIAL + 1, len(articles)))
            burst_began = time.perf_counter()
            await asyncio.gather(*(crawl(articles[i], i) for i in rest))
            burst_s = time.perf_counter() - burst_began
            cpu_burst = sum(cpu_s(p) for p in tree(process.pid)) - cpu_before
            main_burst = cpu_s(main) - main_before
            await asyncio.sleep(0.5)
            pids = tree(process.pid)
            rss = [rss_mb(p) for p in pids]
            for pid, mb in zip(pids, rss, strict=True):
                print(f"  {mb:6.1f} MB  {describe(pid)}", file=sys.stderr)  # noqa: T201
            return {
                "ready_s": ready_s,
                "first_job_s": first,
                "later_job_s": statistics.median(later),
                "burst_pages_per_s": len(rest) / burst_s,
                "cpu_ms_per_page": 1000 * cpu_burst / len(rest),
                "main_cpu_ms_per_page": 1000 * main_burst / len(rest),
                "rss_total_mb": sum(rss),
                "pss_total_mb": sum(pss_mb(p) for p in pids),
                "rss_max_process_mb": max(rss),
                "processes": len(pids),
                **parts,
            }
    finally:
        await nc.close()
        with contextlib.suppress(Exception):
            await bus.stop()
        if process is not None:
            if profile:  # py-spy writes its profile on SIGINT; the crawler stops on it too
                os.killpg(process.pid, signal.SIGINT)
            else:
                process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await drop_namespace(infra, ns)
        stop_infra(infra)


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the crawler exited before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.02)
    raise RuntimeError("the crawler was not ready in time")


UNITS = {
    "ready_s": "s",
    "first_job_s": "s",
    "later_job_s": "s",
    "burst_pages_per_s": "pages/s",
    "cpu_ms_per_page": "ms",
    "main_cpu_ms_per_page": "ms",
    "rss_total_mb": "MB",
    "pss_total_mb": "MB",
    "rss_max_process_mb": "MB",
    "processes": "",
    "first_fetch_ms": "ms",
    "later_fetch_ms": "ms",
    "first_extract_ms": "ms",
    "later_extract_ms": "ms",
}
# The goals of issue 8 (first job: as cheap as a later one; memory: 300 MB in all, 150 each).
GOALS = {"rss_total_mb": 300.0, "rss_max_process_mb": 150.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--workers", type=int, default=0, help="CRAWLER_EXTRACT_WORKERS")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds between ready and the first job"
    )
    parser.add_argument("--logs", help="keep the crawler's output in this folder")
    parser.add_argument("--profile", help="record a py-spy profile (raw) of the crawler here")
    args = parser.parse_args()
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(args.logs or tmp)
        for n in range(args.rounds):
            results.append(
                asyncio.run(
                    run_round(args.workers, logs / f"crawler-{n}.log", args.profile, args.settle)
                )
            )
    rows: list[tuple[str, float, float | None, str]] = []
    for key, unit in UNITS.items():
        value = statistics.median(r[key] for r in results)
        baseline: float | None = GOALS.get(key)
        if key.startswith("first_"):
            later = key.replace("first_", "later_", 1)
            baseline = statistics.median(r[later] for r in results)
        rows.append((f"crawler.{key}", value, baseline, unit))
    if args.json:
        for name, value, baseline, unit in rows:
            line: dict[str, Any] = {"name": name, "value": round(value, 4), "unit": unit}
            line["baseline"] = None if baseline is None else round(baseline, 4)
            line["ratio"] = None if not baseline else round(value / baseline, 3)
            print(json.dumps(line), flush=True)  # noqa: T201 - a bench prints its figures
        return
    out = [
        f"crawler as a process, {args.rounds} round(s), median; baseline: a later job for the "
        "first job, issue 8's goal for memory",
        "",
        "| figure | value | baseline | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, value, baseline, unit in rows:
        base = "" if baseline is None else f"{baseline:.3f} {unit}"
        ratio = "" if not baseline else f"{value / baseline:.2f}"
        out.append(f"| {name} | {value:.3f} {unit} | {base} | {ratio} |")
    print("\n".join(out), flush=True)  # noqa: T201 - a bench prints its tables


if __name__ == "__main__":
    main()
