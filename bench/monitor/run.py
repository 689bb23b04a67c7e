"""Monitor benchmark: the monitor process's CPU per pipeline event, next to decoding the same
events with pydantic alone (the least any consumer of them must spend), and the PostgreSQL
work it causes.

A real `python -m monitor` runs in its own namespace; the bench publishes --jobs jobs' worth
of events (submitted, progress per stage, page, translation, post: 10 per job) into the
stream, waits until the monitor's consumer has acked them all, and reads the process's CPU
time (user + system) before and after, the CPU of the PostgreSQL backends serving its
connections, and the rows written in its schema (inserted + updated + deleted, from
pg_stat_user_tables). Min and median over --reps runs.

By default jobs start at --jobs-per-s (6: the pipeline's pace on this machine, so events
trickle in as they do in production, a job's ten spread over two seconds); --jobs-per-s 0
floods the stream with all of them at once (a backlog: the biggest batches).

--compare PYTHONPATH runs the monitor also from that copy of the packages (say, the old
`monitor` package copied to /tmp/old: `--compare /tmp/old`), taking turns with the current
code each repetition, and prints both.

    uv run python bench/monitor/run.py [--jobs 180] [--jobs-per-s 6] [--reps 3] [--json]
                                       [--compare /tmp/old]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import asyncpg
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
STATS_FLUSH_S = 11.0
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


def start_monitor(
    env: dict[str, str], pythonpath: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ) | env | {"MONITOR_PORT": str(port), "LOG_LEVEL": "WARNING"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen([sys.executable, "-m", "monitor"], env=env, stdin=subprocess.DEVNULL)
    return process, port


class Postgres:
    """The PostgreSQL side of one monitor: its backends' CPU (its pool's connections carry
    application_name seoblog:<schema>) and the rows written in its schema."""

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn, self.schema = conn, schema

    async def backends(self) -> dict[int, float]:
        """CPU seconds of each backend serving one of the monitor's connections."""
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            f"seoblog:{self.schema}"[:63],
        )
        found = {}
        for r in rows:
            with contextlib.suppress(OSError):
                found[r["pid"]] = cpu_seconds(r["pid"])
        return found

    async def rows(self, *, wait: bool) -> int:
        if wait:  # an idle backend reports its counts within 10 s (PGSTAT_IDLE_INTERVAL)
            await asyncio.sleep(STATS_FLUSH_S)
        await self.conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await self.conn.fetchval(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint"
            " FROM pg_stat_user_tables WHERE schemaname = $1",
            self.schema,
        )
        return int(value)


def paced(events: list[list[Event]], jobs_per_s: float) -> list[tuple[float, Event]]:
    """When to publish each event: job n starts at n / jobs_per_s and its events follow at
    their own offsets (occurred_at), so several jobs' events interleave as in the pipeline."""
    timed = []
    for n, job in enumerate(events):
        start = n / jobs_per_s
        for e in job:
            timed.append((start + (e.occurred_at - job[0].occurred_at).total_seconds(), e))
    timed.sort(key=lambda x: x[0])
    return timed


async def one_run(
    env: dict[str, str],
    jobs: int,
    jobs_per_s: float,
    process: subprocess.Popen[bytes],
    port: int,
) -> dict[str, float]:
    """Monitor CPU per event (all of it, and less what it spends idle in that time), its idle
    CPU share, pydantic's decoding CPU per event, and PostgreSQL's CPU and rows per event."""
    settings = ServiceSettings(
        _env_file=None,
        service="bench",
        nats_url=env["NATS_URL"],
        database_url=env["DATABASE_URL"],
        namespace=env["SEOBLOG_NAMESPACE"],
        event_key=env.get("SEOBLOG_EVENT_KEY") or None,
    )
    bus = Bus(settings)
    await bus.start()
    conn = await asyncpg.connect(env["DATABASE_URL"])
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
        pg = Postgres(conn, f"{settings.namespace}_monitor")
        idle_from, idle_began = cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(IDLE_S)
        idle = (cpu_seconds(process.pid) - idle_from) / (time.monotonic() - idle_began)
        per_job = [job_events(n) for n in range(jobs)]
        events = [e for job in per_job for e in job]
        bodies = [bus.encode(e)[0] for e in events]
        rows_before, backends_before = await pg.rows(wait=False), await pg.backends()
        before, began = cpu_seconds(process.pid), time.monotonic()
        if jobs_per_s > 0:
            for at, event in paced(per_job, jobs_per_s):
                wait = began + at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await bus.publish(event)
        else:
            for i in range(0, len(events), 64):
                await asyncio.gather(*(bus.publish(e) for e in events[i : i + 64]))
        deadline = time.monotonic() + 300
        while not await settled(bus, len(events)):
            if time.monotonic() > deadline:
                raise RuntimeError("monitor did not ack every event in time")
            await asyncio.sleep(0.05)
        used = cpu_seconds(process.pid) - before
        elapsed = time.monotonic() - began
        backends_after = await pg.backends()
        pg_used = sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_after.items())
        rows = await pg.rows(wait=True) - rows_before
        busy = used - idle * elapsed
        n = len(events)
        return {
            "cpu": used / n,
            "busy": busy / n,
            "idle": idle,
            "baseline": baseline_cpu_per_event(bodies),
            "pg_cpu": pg_used / n,
            "pg_rows": rows / n,
        }
    finally:
        await conn.close()
        await bus.stop()


FIGURES = (
    ("monitor.cpu_us_per_event", "cpu", 1e6, "us"),
    ("monitor.busy_cpu_us_per_event", "busy", 1e6, "us"),
    ("monitor.postgres_cpu_us_per_event", "pg_cpu", 1e6, "us"),
    ("monitor.postgres_rows_per_event", "pg_rows", 1, "rows"),
    ("monitor.idle_cpu_pct", "idle", 100, "%"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=180)
    parser.add_argument("--jobs-per-s", type=float, default=6.0, help="0: all at once")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compare", metavar="PYTHONPATH", help="also run from this copy")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()

    variants: dict[str, str | None] = {"current": None}
    if args.compare:
        variants["compare"] = args.compare
    infra = ensure_infra(Path(".seoblog") / "bench-monitor")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for rep in range(args.reps):
            order = list(variants) if rep % 2 == 0 else list(reversed(variants))
            for name in order:
                namespace = f"bench{uuid.uuid4().hex[:8]}"
                env = env_for(infra, namespace)
                env["OTEL_TRACES_EXPORTER"] = os.environ.get("OTEL_TRACES_EXPORTER", "none")
                env["SEOBLOG_EVENT_KEY"] = uuid.uuid4().hex
                process, port = start_monitor(env, variants[name])
                try:
                    runs[name].append(
                        asyncio.run(one_run(env, args.jobs, args.jobs_per_s, process, port))
                    )
                finally:
                    process.terminate()
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                    asyncio.run(drop_namespace(infra, namespace))
    finally:
        stop_infra(infra)
    baseline = min(r["baseline"] for series in runs.values() for r in series)
    rows = []
    for variant, series in runs.items():
        for name, key, scale, unit in FIGURES:
            values = [r[key] for r in series]
            per_event = unit == "us" and key != "pg_cpu"
            rows.append(
                {
                    "name": name if variant == "current" else f"{name}.{variant}",
                    "value": round(min(values) * scale, 2),
                    "median": round(statistics.median(values) * scale, 2),
                    "baseline": round(baseline * 1e6, 1) if per_event else None,
                    "ratio": round(min(values) / baseline, 2) if per_event else None,
                    "unit": unit,
                }
            )
    if args.json:
        for row in rows:
            print(json.dumps(row))  # noqa: T201 - the bench's output
        return
    print(f"{'figure':<44}{'min':>9}{'median':>9}{'baseline':>10}{'ratio':>7}")  # noqa: T201
    for row in rows:
        print(  # noqa: T201
            f"{row['name']:<44}{row['value']:>9}{row['median']:>9}{row['baseline']!s:>10}"
            f"{row['ratio']!s:>7}"
        )
    pace = f"{args.jobs_per_s:g} jobs/s" if args.jobs_per_s > 0 else "all at once"
    print(  # noqa: T201
        f"{args.jobs * 10} events per run ({args.jobs} jobs, {pace}); baseline: pydantic decoding"
        " the same events; busy: less the monitor's idle CPU rate over the same time"
    )


if __name__ == "__main__":
    main()
