"""Monitor benchmark: the monitor process's CPU per pipeline event, next to decoding the same
events with pydantic alone (the least any consumer of them must spend).

A real `python -m monitor` runs in its own namespace; the bench publishes --jobs jobs' worth
of events (submitted, progress per stage, page, translation, post: about 10 per job) into the
stream, waits until the monitor's consumer has acked them all, and reads the process's CPU
time (user + system) before and after. Min and median over --reps runs.

    uv run python bench/monitor/run.py [--jobs 600] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from monitor.handlers import AnyEvent
from seoblog_contracts import (
    Event,
    JobProgress,
    JobSpec,
    JobSubmitted,
    PageCrawled,
    PostGenerated,
    SeoReport,
    Stage,
    TextTranslated,
    utcnow,
)
from seoblog_devstack.infra import ensure_infra, free_port, stop_infra
from seoblog_runtime import Bus, ServiceSettings
from seoblog_testing.plugin import drop_namespace, env_for

CONSUMER = "monitor-observe_event"
IDLE_S = 3.0
TEXT = "A paragraph of an article about travelling in Seoul. " * 40


def job_events(n: int) -> list[Event]:
    """One job's events, as the pipeline publishes them, with plausible times."""
    job, t0 = f"bench-{uuid.uuid4().hex[:12]}-{n}", utcnow()
    url = f"https://example.com/{n}"
    spec = JobSpec(url=url, keywords=["seoul"])

    def at(s: float) -> Any:
        return t0 + timedelta(seconds=s)

    def prog(stage: Stage, s: float, percent: int) -> JobProgress:
        return JobProgress(job_id=job, stage=stage, percent=percent, occurred_at=at(s))

    return [
        JobSubmitted(job_id=job, occurred_at=at(0), spec=spec),
        prog(Stage.CRAWL, 0.1, 0),
        prog(Stage.CRAWL, 0.3, 60),
        PageCrawled(
            job_id=job,
            occurred_at=at(0.5),
            spec=spec,
            url=url,
            final_url=url,
            title="Seoul",
            text=TEXT,
            content_hash="h",
        ),
        prog(Stage.TRANSLATE, 0.6, 0),
        TextTranslated(
            job_id=job,
            occurred_at=at(1.0),
            spec=spec,
            source_url=url,
            title="Seoul",
            text=TEXT,
            source_language="en",
            target_language="en",
            translated=False,
            content_hash="h",
        ),
        prog(Stage.GENERATE, 1.1, 0),
        prog(Stage.GENERATE, 1.5, 50),
        prog(Stage.GENERATE, 1.9, 90),
        PostGenerated(
            job_id=job,
            occurred_at=at(2.0),
            post_id=f"post-{job}",
            source_url=url,
            language="en",
            title="Seoul",
            slug="seoul",
            meta_description="Seoul.",
            markdown=TEXT,
            html=f"<p>{TEXT}</p>",
            keywords=["seoul"],
            seo=SeoReport(score=90),
            writer="offline",
        ),
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline_cpu_per_event(bodies: list[bytes]) -> float:
    adapter: TypeAdapter[Any] = TypeAdapter(AnyEvent)
    began = time.process_time()
    for body in bodies:
        adapter.validate_json(body)
    return (time.process_time() - began) / len(bodies)


async def settled(bus: Bus, total: int) -> bool:
    try:
        info = await bus.js.consumer_info(bus.subjects.stream, CONSUMER)
    except Exception:
        return False
    return bool(
        info.delivered.stream_seq >= total and info.num_pending == 0 and info.num_ack_pending == 0
    )


def start_monitor(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ) | env | {"MONITOR_PORT": str(port), "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "monitor"], env=env, stdin=subprocess.DEVNULL)
    return process, port


async def one_run(
    env: dict[str, str], jobs: int, process: subprocess.Popen[bytes], port: int
) -> tuple[float, float, float, float]:
    """Monitor CPU per event (all of it, and less what it spends idle in that time), its idle
    CPU share, and pydantic's decoding CPU per event, for one namespace."""
    settings = ServiceSettings(
        _env_file=None,  # type: ignore[call-arg]
        service="bench",
        nats_url=env["NATS_URL"],
        database_url=env["DATABASE_URL"],
        namespace=env["SEOBLOG_NAMESPACE"],
        event_key=env.get("SEOBLOG_EVENT_KEY") or None,
    )
    bus = Bus(settings)
    await bus.start()
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("monitor did not get ready")
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let start-up work settle before counting
        idle_from, idle_began = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(IDLE_S)
        idle = (cpu_seconds(process.pid) - idle_from) / (time.monotonic() - idle_began)
        events = [e for n in range(jobs) for e in job_events(n)]
        bodies = [bus.encode(e)[0] for e in events]
        before, began = cpu_seconds(process.pid), time.monotonic()
        for i in range(0, len(events), 64):
            await asyncio.gather(*(bus.publish(e) for e in events[i : i + 64]))
        deadline = time.monotonic() + 300
        while not await settled(bus, len(events)):
            if time.monotonic() > deadline:
                raise RuntimeError("monitor did not ack every event in time")
            await asyncio.sleep(0.05)
        used = cpu_seconds(process.pid) - before
        busy = used - idle * (time.monotonic() - began)
        return used / len(events), busy / len(events), idle, baseline_cpu_per_event(bodies)
    finally:
        await bus.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()

    infra = ensure_infra(Path(".seoblog") / "bench-monitor")
    values, busies, idles, baselines = [], [], [], []
    try:
        for _ in range(args.reps):
            namespace = f"bench{uuid.uuid4().hex[:8]}"
            env = env_for(infra, namespace)
            env["OTEL_TRACES_EXPORTER"] = os.environ.get("OTEL_TRACES_EXPORTER", "none")
            env["SEOBLOG_EVENT_KEY"] = uuid.uuid4().hex
            process, port = start_monitor(env)
            try:
                value, busy, idle, baseline = asyncio.run(one_run(env, args.jobs, process, port))
            finally:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                asyncio.run(drop_namespace(infra, namespace))
            values.append(value)
            busies.append(busy)
            idles.append(idle)
            baselines.append(baseline)
    finally:
        stop_infra(infra)
    baseline = min(baselines)
    rows = [
        {
            "name": name,
            "value": round(min(series) * 1e6, 1),
            "median": round(statistics.median(series) * 1e6, 1),
            "baseline": round(baseline * 1e6, 1),
            "ratio": round(min(series) / baseline, 2),
            "unit": "us",
        }
        for name, series in (
            ("monitor.cpu_us_per_event", values),
            ("monitor.busy_cpu_us_per_event", busies),
        )
    ]
    rows.append(
        {
            "name": "monitor.idle_cpu_pct",
            "value": round(min(idles) * 100, 2),
            "median": round(statistics.median(idles) * 100, 2),
            "baseline": None,
            "ratio": None,
            "unit": "%",
        }
    )
    if args.json:
        for row in rows:
            print(json.dumps(row))  # noqa: T201 - the bench's output
        return
    print(f"{'figure':<32}{'min':>9}{'median':>9}{'baseline':>10}{'ratio':>7}")  # noqa: T201
    for row in rows:
        print(  # noqa: T201
            f"{row['name']:<32}{row['value']:>9}{row['median']:>9}{row['baseline']!s:>10}"
            f"{row['ratio']!s:>7}"
        )
    print(  # noqa: T201
        f"{args.jobs * 10} events per run ({args.jobs} jobs); baseline: pydantic decoding the"
        " same events; busy: less the monitor's idle CPU rate over the same time"
    )


if __name__ == "__main__":
    main()
