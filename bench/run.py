"""seoblog's performance benchmark (issue 8): every figure beside its baseline, measured in the
same run on this machine, with the five services as real processes.

    uv run python bench/run.py                  # 3 interleaved rounds, a table (min/median)
    uv run python bench/run.py --quick --json   # one short round, one JSON object per line
    uv run python bench/run.py --only pipeline,bus.hop_p50_ms

Each round: one `trafilatura.extract` pass over the fixture pages (the extraction bound), one
JetStream hop by hand, the services' imports with bytecode, the gateway against a bare FastAPI
app, then the five services started together (start-up), a first job, N jobs on distinct URLs
of the fixture pages, 300 identical (cached) jobs, 50 sequential jobs (overhead) and the
services' memory. Fake LLM at 0 ms, fixture site on loopback, this machine's NATS, PostgreSQL
and Redis (or embedded ones), a fresh namespace per part, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import nats
from nats.js.api import ConsumerConfig, StreamConfig
from perf.figures import REQUIRED, Figures, as_json_lines, as_table
from perf.load import Load, raw_request, run_load
from perf.procs import Proc, cpu_seconds, infra_processes, pss_mb, rss_mb, tree, tree_cpu_seconds
from perf.profile import Profiles
from perf.system import SERVICES, Jobs, Stack, TimedApp, drop_everything, metric_sum, service_env

from seoblog_devstack.infra import Infra, ensure_infra, free_port, stop_infra
from seoblog_testing import unique_name
from seoblog_testing.fake_llm import FakeLLM
from seoblog_testing.site import FixtureSite, shared_dir

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SCORE = shared_dir() / "tools" / "extraction_score.py"
DATA = shared_dir() / "fixtures" / "extraction"
CORES = os.cpu_count() or 1
ONE_PASS = str(BENCH / "perf" / "one_pass.py") + ":extract"
SPEC = {"keywords": ["science", "research"], "target_language": "de", "length": 600}
# Uncached work: each job pairs a page with a target language no earlier job of the round used
# for it (the translator caches segments per language) and keywords of its own (the generator
# caches per keywords); every round has a namespace, so caches, of its own.
LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da", "fi", "cs", "ro")


class Fresh:
    """Job bodies whose work no earlier job of the round has done."""

    def __init__(self, site: FixtureSite, round_id: str) -> None:
        self.site = site
        self.articles = site.article_ids()
        self.round_id = round_id
        self.used: dict[int, int] = {}
        self.count = 0

    def body(self, page: int) -> dict[str, Any]:
        page %= len(self.articles)
        n = self.used.get(page, 0)
        self.used[page] = n + 1
        self.count += 1
        url = self.site.article_url(self.articles[page]) + f"?r={self.round_id}&n={self.count}"
        return {
            "url": url,
            "keywords": ["science", f"topic {self.count}"],
            "target_language": LANGUAGES[n % len(LANGUAGES)],
            "length": 600,
        }


# Which part of a round measures which figures (for --only).
PARTS: dict[str, tuple[str, ...]] = {
    "extraction": ("extraction.f1",),
    "bound": ("pipeline.bound_jobs_per_min", "extraction.one_pass_ms"),
    "hop": ("bus.hop_p50_ms",),
    "imports": ("imports.",),
    "gateway": ("gateway.", "rss.bare_api_mb"),
    "stack": (
        "startup.s",
        "first_job.s",
        "pipeline.",
        "cached.",
        "overhead.",
        "rss.",
        "stage.",
        "storage.",
        "llm.",
    ),
}


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def parts_for(only: list[str]) -> set[str]:
    """The parts that measure any of the figures (names or prefixes) in `only`."""
    if not only:
        return set(PARTS)
    wanted = set()
    for item in only:
        if item in PARTS:
            wanted.add(item)
            continue
        for part, names in PARTS.items():
            if any(item.startswith(n) or n.startswith(item) for n in names):
                wanted.add(part)
    if not wanted:
        sys.exit(f"--only: no figure matches {only}")
    # The bound is the baseline of the pipeline figures; the bare app's RSS of the stack's.
    if "stack" in wanted:
        wanted |= {"bound", "hop", "imports", "gateway"}
    return wanted


# --- parts of a round -------------------------------------------------------------------------


def score(extractor: str, timeout_s: float = 300) -> dict[str, Any]:
    """extraction_score.py's JSON for an extractor over the fixture pages."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(  # noqa: S603 - our interpreter and the shared scorer
        [sys.executable, str(SCORE), str(DATA), "--extractor", extractor, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_extraction(figs: Figures, baseline: dict[str, Any]) -> None:
    log("extraction F1 of the crawler's extractor")
    ours = score("crawler.extract:extract_text")
    figs.add(
        "extraction.f1",
        ours["shingles"]["f1"],
        baseline["shingles"]["f1"],
        "F1",
        f"shingles F1 on {ours['items']} pages; baseline: one plain trafilatura.extract pass; "
        f"ours extracts {ours['pages_per_second']:.0f} pages/s on one core, one pass "
        f"{baseline['pages_per_second']:.0f}",
    )


def measure_bound(figs: Figures) -> dict[str, Any]:
    log("extraction bound: one trafilatura.extract pass over the fixture pages")
    one = score(ONE_PASS)
    per_core = one["pages_per_second"]
    figs.add(
        "pipeline.bound_jobs_per_min",
        CORES * per_core * 60,
        None,
        "jobs/min",
        f"{CORES} cores × {per_core:.0f} pages/s (wall, one process, {one['items']} pages)",
    )
    figs.add(
        "extraction.one_pass_ms",
        1000 * one["extract_cpu_seconds"] / one["items"],
        None,
        "ms CPU/page",
    )
    return one


async def _hop(infra: Infra, ns: str, count: int) -> float:
    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    stream, subject = f"{ns.upper()}_HOP", f"{ns}.hop.x"
    try:
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{ns}.hop.>"]))
        sub = await js.pull_subscribe(subject, "hop", config=ConsumerConfig(ack_wait=30))
        times = []
        for i in range(count + 20):
            began = time.perf_counter()
            await js.publish(subject, b'{"n": %d}' % i)
            (msg,) = await sub.fetch(1, timeout=5)
            await msg.ack()
            if i >= 20:  # warm-up
                times.append(time.perf_counter() - began)
        return 1000 * statistics.median(times)
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await nc.close()


def measure_hop(figs: Figures, infra: Infra, ns: str, count: int) -> float:
    log("one JetStream hop by hand")
    hop = asyncio.run(_hop(infra, ns, count))
    figs.add(
        "bus.hop_p50_ms",
        hop,
        None,
        "ms",
        f"nats-py publish with ack, pull-fetch and ack, p50 of {count}",
    )
    return hop


def measure_imports(figs: Figures, reps: int) -> float:
    """The five services' imports (`import <service>.__main__`) with compiled bytecode, kept
    in a private PYTHONPYCACHEPREFIX so the shared virtualenv is untouched, all five at once.

    The baseline is CPU time, which a shared machine's load does not stretch: the slowest
    import's CPU, or all five's CPU spread over the cores, whichever is longer; the earliest
    the five could have imported here."""
    log("service imports with bytecode")
    cache = ROOT / ".seoblog" / "bench" / "pycache"
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(cache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def timed() -> tuple[float, dict[str, float]]:
        began = time.perf_counter()
        running = {
            subprocess.Popen(  # noqa: S603 - our interpreter
                [sys.executable, "-c", f"import {name}.__main__"], env=env
            ).pid: name
            for name in SERVICES
        }
        cpu = {}
        for pid, name in running.items():
            _, status, usage = os.wait4(pid, 0)
            if status != 0:
                raise RuntimeError(f"import {name}.__main__ failed ({status})")
            cpu[name] = usage.ru_utime + usage.ru_stime
        return time.perf_counter() - began, cpu

    if not any(cache.iterdir()):
        timed()  # writes the bytecode; later runs only recompile what changed since
    wall, cpu = min((timed() for _ in range(reps)), key=lambda t: sum(t[1].values()))
    floor = max(max(cpu.values()), sum(cpu.values()) / CORES)
    figs.add(
        "imports.cpu_floor_s",
        floor,
        None,
        "s",
        f"CPU of the imports: {', '.join(f'{n} {c:.2f}' for n, c in cpu.items())}; "
        f"all five at once took {wall:.1f} s wall",
    )
    return floor


async def _gateway_loads(
    gw: Proc, bare: Proc, gw_port: int, bare_port: int, key: str, seconds: float
) -> dict[tuple[str, int, str], Load]:
    body = json.dumps({"url": "https://example.com/blog/a", **SPEC}).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        auth = {"Authorization": f"Bearer {key}"}
        made = await client.post(
            f"http://127.0.0.1:{gw_port}/v1/jobs",
            content=body,
            headers=auth | {"content-type": "application/json"},
        )
        made.raise_for_status()
        gw_id = made.json()["id"]
        made = await client.post(
            f"http://127.0.0.1:{bare_port}/v1/jobs",
            content=body,
            headers={"content-type": "application/json"},
        )
        made.raise_for_status()
        bare_id = made.json()["id"]
    out: dict[tuple[str, int, str], Load] = {}
    # Gateway and bare take turns, twice per cell; the better turn of each counts (a shared
    # machine's noise only ever slows a turn down).
    for conns in (16, 64):
        for what in ("submit", "status"):
            for _ in range(2):
                for side, proc, port, job_id, k in (
                    ("gateway", gw, gw_port, gw_id, key),
                    ("bare", bare, bare_port, bare_id, None),
                ):
                    raw = (
                        raw_request("POST", "/v1/jobs", body, k)
                        if what == "submit"
                        else raw_request("GET", f"/v1/jobs/{job_id}", b"", k)
                    )
                    result = await run_load(
                        port, raw, conns, seconds, functools.partial(tree_cpu_seconds, proc.pid)
                    )
                    best = out.get((what, conns, side))
                    if best is None or result.rps > best.rps:
                        out[(what, conns, side)] = result
    return out


def measure_gateway(
    figs: Figures, infra: Infra, ns: str, logs: Path, seconds: float, registry: list[Proc]
) -> float:
    """The gateway alone (no other service consumes its jobs) against the bare app; returns
    the bare app's RSS after its load, the memory baseline."""
    log(f"gateway vs bare FastAPI, {seconds:g} s a cell at 16 and 64 connections")
    key = "sk_seo_" + secrets.token_urlsafe(32)
    gw_port, bare_port = free_port(), free_port()
    env = service_env(infra, ns, "http://127.0.0.1:9/v1", "unused", "WARNING", 8) | {
        "GATEWAY_PORT": str(gw_port),
        "GATEWAY_OPEN_MODE": "0",
        "GATEWAY_ADMIN_KEY": key,
        "BARE_POOL": "8",
    }
    gw = Proc("gateway", [sys.executable, "-m", "gateway"], env, logs / "gateway-alone.log")
    bare = Proc(
        "bare",
        [sys.executable, str(BENCH / "perf" / "bare_api.py"), str(bare_port)],
        env,
        logs / "bare.log",
    )
    registry += [gw, bare]
    gw.start()
    bare.start()
    try:
        for proc, port in ((gw, gw_port), (bare, bare_port)):
            _wait_ready(proc, f"http://127.0.0.1:{port}/readyz")
        loads = asyncio.run(_gateway_loads(gw, bare, gw_port, bare_port, key, seconds))
        bare_rss = sum(rss_mb(p) for p in tree(bare.pid))
        gw_rss = sum(rss_mb(p) for p in tree(gw.pid))
    finally:
        gw.stop()
        bare.stop()
    busiest = max(r.client_busy for r in loads.values())
    for what, unit in (("submit", "POST /v1/jobs"), ("status", "GET /v1/jobs/{id}")):
        ratios = []
        for conns in (16, 64):
            g, b = loads[(what, conns, "gateway")], loads[(what, conns, "bare")]
            ratios.append(g.rps / b.rps if b.rps else float("nan"))
            figs.add(
                f"gateway.{what}.c{conns}_rps",
                g.rps,
                b.rps,
                "req/s",
                f"{unit}; p50 {g.pct_ms(0.5):.1f} ms vs {b.pct_ms(0.5):.1f} ms; "
                f"errors {g.errors} vs {b.errors}",
            )
        figs.add(
            f"gateway.{what}.ratio",
            min(ratios),
            None,
            "× bare",
            "the lower of 16 and 64 connections",
        )
        g_cpu = sum(loads[(what, c, "gateway")].server_cpu_s for c in (16, 64))
        g_req = sum(loads[(what, c, "gateway")].requests for c in (16, 64))
        b_cpu = sum(loads[(what, c, "bare")].server_cpu_s for c in (16, 64))
        b_req = sum(loads[(what, c, "bare")].requests for c in (16, 64))
        g_ms, b_ms = 1000 * g_cpu / max(g_req, 1), 1000 * b_cpu / max(b_req, 1)
        figs.add(
            f"gateway.{what}.cpu_ms_per_req",
            g_ms,
            b_ms,
            "ms CPU",
            "server process CPU over the measured window ÷ requests",
        )
        figs.add(
            f"gateway.{what}.cpu_ratio",
            g_ms / b_ms if b_ms else None,
            None,
            "× bare",
            f"load client at most {busiest:.0%} of one core (not the bottleneck below ~90%)",
        )
    figs.add(
        "rss.bare_api_mb",
        bare_rss,
        None,
        "MB",
        f"after its load; the gateway alone {gw_rss:.0f} MB",
    )
    return bare_rss


def _wait_ready(proc: Proc, url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready in {timeout_s:g} s:\n{proc.tail()}")


def _stack_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each service (with its children) and of the infrastructure
    processes on this machine (shared with whatever else runs here: an upper bound)."""
    cpu = {name: tree_cpu_seconds(p.pid) for name, p in stack.procs.items()}
    for pid, comm in infra_processes():
        cpu[comm] = cpu.get(comm, 0.0) + cpu_seconds(pid)
    return cpu


async def _stack_work(
    figs: Figures,
    stack: Stack,
    infra: Infra,
    ns: str,
    site: FixtureSite,
    llm: FakeLLM,
    llm_time: TimedApp,
    round_id: str,
    jobs_n: int,
    sequential_n: int,
    cached_n: int,
    bound: float,
    hop_ms: float,
    extract_s: float,
    profile: Path | None,
) -> dict[str, float]:
    fresh = Fresh(site, round_id)
    async with Jobs(stack.url("gateway"), infra, ns) as jobs:
        # First job right after every /readyz answered.
        began = time.perf_counter()
        first = await jobs.submit(fresh.body(0))
        ended = await jobs.wait_one(first, 120)
        first_s = ended - began
        if jobs.failed([first]):
            raise RuntimeError(f"the first job failed:\n{stack.procs['crawler'].tail()}")

        # Throughput: N jobs on distinct URLs, submitted as fast as 16 connections go.
        log(f"pipeline: {jobs_n} jobs on distinct URLs")
        bodies = [fresh.body(i) for i in range(jobs_n)]
        await jobs.wait_idle()
        store0 = await jobs.footprint()
        rows0 = await jobs.row_writes()
        profiles = (
            Profiles(profile / round_id, {n: p.pid for n, p in stack.procs.items()})
            if profile is not None
            else None
        )
        pg0 = await jobs.backend_cpu()
        cpu0, calls0, harness0 = _stack_cpu(stack), llm.calls, time.process_time()
        tokens0 = llm.tokens
        began = time.perf_counter()
        try:
            ids = await jobs.submit_many(bodies, 16)
            last = await jobs.wait_all(ids, timeout_s=max(300, jobs_n))
        finally:
            if profiles is not None:
                profiles.stop()
        cpu1, harness = _stack_cpu(stack), time.process_time() - harness0
        pg1 = await jobs.backend_cpu()
        for service in sorted(pg1):
            figs.add(
                f"stage.postgres.{service}.cpu_ms_per_job",
                1000 * (pg1[service] - pg0.get(service, 0.0)) / jobs_n,
                None,
                "ms CPU",
                "CPU of the PostgreSQL backends serving this service's pool",
            )
        used = {name: cpu1.get(name, 0.0) - cpu0.get(name, 0.0) for name in cpu1}
        await jobs.wait_idle()
        store1 = await jobs.footprint()
        await asyncio.sleep(1.2)  # backends report their row counts about once a second
        rows1 = await jobs.row_writes()
        per_table = sorted(
            ((t, (w - rows0.get(t, 0)) / jobs_n) for t, w in rows1.items()),
            key=lambda tw: -tw[1],
        )
        figs.add(
            "storage.pg_rows_per_job",
            sum(w for _, w in per_table),
            None,
            "rows",
            "rows inserted, updated or deleted per job: "
            + ", ".join(f"{t} {w:.1f}" for t, w in per_table if w >= 0.05),
        )
        figs.add(
            "storage.stream_msgs_per_job",
            (store1[0] - store0[0]) / jobs_n,
            None,
            "msgs",
            "messages the pipeline added to the namespace's stream, per job",
        )
        figs.add(
            "storage.stream_kb_per_job",
            (store1[1] - store0[1]) / jobs_n / 1024,
            None,
            "KB",
            "stream bytes per job (kept for SEOBLOG stream_max_age_s)",
        )
        figs.add(
            "storage.pg_kb_per_job",
            (store1[2] - store0[2]) / jobs_n / 1024,
            None,
            "KB",
            "growth of the namespace's PostgreSQL tables (with indexes and TOAST) per job",
        )
        for name, seconds in used.items():
            shared = name not in SERVICES
            figs.add(
                f"stage.{name}.cpu_ms_per_job",
                1000 * seconds / jobs_n,
                None,
                "ms CPU",
                "machine-wide, shared with other work: an upper bound" if shared else "",
            )
            if not shared and seconds > 0:
                figs.add(f"stage.{name}.jobs_per_s_per_core", jobs_n / seconds, None, "jobs/s")
        per_min = 60 * jobs_n / (last - began)
        failed = jobs.failed(ids)
        figs.add(
            "pipeline.jobs_per_min",
            per_min,
            bound,
            "jobs/min",
            f"{jobs_n} jobs, {failed} not completed, {llm.calls - calls0} LLM calls; the bench "
            f"process (fake LLM, fixture site, client) used {1000 * harness / jobs_n:.0f} ms "
            "CPU per job",
        )
        figs.add("pipeline.ratio", per_min / bound, None, "× bound")
        figs.add("llm.calls_per_job", (llm.calls - calls0) / jobs_n, None, "calls")
        figs.add(
            "llm.tokens_per_job",
            (llm.tokens - tokens0) / jobs_n,
            None,
            "tokens",
            "prompt + completion as the fake LLM counts them (4 characters a token)",
        )
        figs.add(
            "pipeline.cpu_s_per_job",
            sum(used[n] for n in SERVICES) / jobs_n,
            extract_s,
            "s CPU",
            "all five service processes and their children over the run ÷ jobs; baseline: "
            "one trafilatura.extract pass's CPU per page",
        )

        # Cached: the same job again and again once it has finished.
        log(f"cached: {cached_n} identical jobs")
        same = fresh.body(1)
        await jobs.wait_one(await jobs.submit(same), 120)
        await jobs.wait_idle()
        calls0, hits0, client0 = llm.calls, jobs.result_cache_hits, time.process_time()
        began = time.perf_counter()
        ids = await jobs.submit_many([same] * cached_n, 16)
        last = await jobs.wait_all(ids, timeout_s=300)
        client = (time.process_time() - client0) / (last - began)
        calls = llm.calls - calls0
        figs.add(
            "cached.jobs_per_s",
            cached_n / (last - began),
            None,
            "jobs/s",
            f"{cached_n} identical jobs after one finished; {jobs.failed(ids)} not completed; "
            f"{jobs.result_cache_hits - hits0} answered from the gateway's result cache; the "
            f"bench process used {client:.0%} of a core meanwhile",
        )
        figs.add("cached.llm_calls", calls, None, "calls", "the fake LLM's served count")

        # Overhead: sequential jobs on fresh URLs; what is left after fetch, LLM, extraction.
        log(f"overhead: {sequential_n} sequential jobs")
        await jobs.wait_idle()
        overheads: list[float] = []
        e2es: list[float] = []
        parts: dict[str, list[float]] = {"fetch": [], "llm": [], "extract": []}
        stages: dict[str, list[float]] = {}
        async with httpx.AsyncClient(base_url=stack.url("crawler"), timeout=10) as crawler:

            async def extract_sum() -> float:
                text = (await crawler.get("/metrics")).text
                return metric_sum(text, "crawler_extraction_seconds_sum")

            for i in range(sequential_n):
                body = fresh.body(i + 2)
                x0, l0 = await extract_sum(), llm_time.total()
                began = time.perf_counter()
                job_id = await jobs.submit(body)
                ended = await jobs.wait_one(job_id, 60)
                e2e = 1000 * (ended - began)
                x1, l1 = await extract_sum(), llm_time.total()
                fetch = jobs.fetch_ms.get(job_id, 0.0)
                llm_ms, extract_ms = 1000 * (l1 - l0), 1000 * (x1 - x0)
                overheads.append(e2e - fetch - llm_ms - extract_ms)
                e2es.append(e2e)
                for stage, ms in (await jobs.stages_ms(job_id)).items():
                    stages.setdefault(stage, []).append(ms)
                parts["fetch"].append(fetch)
                parts["llm"].append(llm_ms)
                parts["extract"].append(extract_ms)
        med = {k: statistics.median(v) for k, v in parts.items()}
        how = "live snapshots" if jobs.live_seen else "a 50 ms database poll (no live snapshots)"
        figs.add(
            "overhead.p50_ms",
            statistics.median(overheads),
            hop_ms,
            "ms",
            f"{sequential_n} sequential jobs: end-to-end p50 {statistics.median(e2es):.0f} ms "
            f"(submit → seen completed via {how}) minus per job fetch (crawler's fetch_ms) "
            f"p50 {med['fetch']:.1f}, LLM (fake LLM server time) p50 {med['llm']:.1f}, "
            f"extraction (crawler_extraction_seconds) p50 {med['extract']:.1f}",
        )
        figs.add(
            "overhead.e2e_p50_ms",
            statistics.median(e2es),
            None,
            "ms",
            "p50 between the job's states (its events' times): "
            + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in stages.items()),
        )
    return {"first_s": first_s, "e2e_s": statistics.median(e2es) / 1000}


def measure_stack(
    figs: Figures,
    infra: Infra,
    ns: str,
    logs: Path,
    args: argparse.Namespace,
    round_id: str,
    bound: float,
    hop_ms: float,
    extract_s: float,
    bare_rss: float,
    imports_s: float,
    registry: list[Proc],
) -> None:
    llm = FakeLLM()
    llm_time = TimedApp(llm.server.app)
    llm.server.app = llm_time
    with llm, FixtureSite() as site:
        env = service_env(infra, ns, llm.base_url, llm.api_key, args.log_level, args.pool)
        stack = Stack(env, logs / f"stack-{round_id}")
        log("start-up: the five services until every /readyz answers")
        try:
            startup = stack.start()
            registry.extend(stack.procs.values())
            figs.add(
                "startup.s",
                startup,
                imports_s,
                "s",
                "all five started at once; baseline the CPU floor of their imports with "
                "bytecode"
                + (
                    ""
                    if not os.environ.get("PYTHONDONTWRITEBYTECODE")
                    else "; PYTHONDONTWRITEBYTECODE is set here"
                ),
            )
            done = asyncio.run(
                _stack_work(
                    figs,
                    stack,
                    infra,
                    ns,
                    site,
                    llm,
                    llm_time,
                    round_id,
                    args.jobs,
                    args.sequential,
                    args.cached,
                    bound,
                    hop_ms,
                    extract_s,
                    args.profile,
                )
            )
            figs.add(
                "first_job.s",
                done["first_s"],
                done["e2e_s"],
                "s",
                "first job after ready; baseline a warm job's end-to-end p50",
            )
            rss = {}
            for name, proc in stack.procs.items():
                for pid in tree(proc.pid):
                    rss[(name, pid)] = rss_mb(pid)
            biggest = max(rss, key=rss.__getitem__)
            crawler = [v for (n, _), v in rss.items() if n == "crawler"]
            crawler_pss = sum(pss_mb(p) for p in tree(stack.procs["crawler"].pid))
            per = ", ".join(f"{n} {rss[(n, stack.procs[n].pid)]:.0f}" for n in SERVICES)
            figs.add(
                "rss.max_service_mb",
                rss[biggest],
                bare_rss,
                "MB",
                f"largest process: {biggest[0]} pid {biggest[1]}; main processes: {per}",
            )
            figs.add(
                "rss.crawler_total_mb",
                sum(crawler),
                bare_rss,
                "MB",
                f"crawler and {len(crawler) - 1} worker processes (PSS {crawler_pss:.0f} MB)",
            )
        finally:
            stack.stop()


# --- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, failures: list[str]) -> Figures:
    figs = Figures()
    wanted = parts_for(args.only)
    rounds = 1 if args.quick else args.rounds
    registry: list[Proc] = []
    namespaces: list[str] = []
    logs = Path(tempfile.mkdtemp(prefix="seoblog-bench-"))
    log(f"logs in {logs}")
    infra = ensure_infra(ROOT / ".seoblog" / "bench", embedded_redis=True)

    def new_namespace() -> str:
        ns = unique_name("bench")
        namespaces.append(ns)
        log(f"namespace {ns}")
        return ns

    def stack(f: Figures, baselines: tuple[float, float, float, float, float]) -> None:
        bound, hop, extract_s, bare_rss, imports_s = baselines
        ns = new_namespace()
        try:
            measure_stack(
                f,
                infra,
                ns,
                logs,
                args,
                secrets.token_hex(3),
                bound,
                hop,
                extract_s,
                bare_rss,
                imports_s,
                registry,
            )
        finally:
            asyncio.run(drop_everything(infra, ns))

    def attempt(part: str, measure: Callable[[Figures], Any]) -> Any:
        """Run one part; a part that fails (a service broken mid-change, a timeout) is tried
        once more after a pause, then skipped and reported. Figures count only from a part
        that finished."""
        for tries in (1, 2):
            staged = Figures()
            try:
                result = measure(staged)
            except Exception as exc:  # any failure of the system under test
                text = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
                head = text[:1] + text[-1:] if len(text) > 1 else text  # what, and why
                log(f"{part} failed ({type(exc).__name__}: {head}); logs in {logs}")
                if tries == 1:
                    time.sleep(args.retry_wait)
                    continue
                failures.append(f"{part}: {type(exc).__name__}: {' '.join(head)[:200]}")
                return None
            for name, samples in staged.samples.items():
                figs.samples[name].extend(samples)
            return result
        return None

    try:
        first_pass: dict[str, Any] | None = None
        for r in range(rounds):
            round_id = secrets.token_hex(3)
            log(f"round {r + 1} of {rounds} ({round_id})")
            nan = float("nan")
            hop = bare_rss = imports_s = bound = extract_s = nan
            if "hop" in wanted:
                hop = attempt(
                    "hop",
                    lambda f: measure_hop(f, infra, new_namespace(), 100 if args.quick else 300),
                )
            if "gateway" in wanted:

                def gateway(f: Figures) -> float:
                    ns = new_namespace()
                    try:
                        return measure_gateway(f, infra, ns, logs, args.seconds, registry)
                    finally:
                        asyncio.run(drop_everything(infra, ns))

                bare_rss = attempt("gateway", gateway)
            if "bound" in wanted:
                one = attempt("bound", measure_bound)
                if one is not None:
                    first_pass = first_pass or one
                    bound = CORES * one["pages_per_second"] * 60
                    extract_s = one["extract_cpu_seconds"] / one["items"]
            # Right before the stack starts, so both see the same machine.
            if "imports" in wanted:
                imports_s = attempt("imports", lambda f: measure_imports(f, 1 if args.quick else 2))
            if "stack" in wanted:
                a, b, c, d, e = (
                    nan if x is None else float(x)
                    for x in (bound, hop, extract_s, bare_rss, imports_s)
                )
                attempt("stack", functools.partial(stack, baselines=(a, b, c, d, e)))
        if "extraction" in wanted:
            attempt("extraction", lambda f: measure_extraction(f, first_pass or score(ONE_PASS)))
    finally:
        for proc in registry:
            proc.stop()
        for ns in namespaces:
            asyncio.run(drop_everything(infra, ns))
        stop_infra(infra)
    return figs


def cpu_pressure_us() -> float | None:
    """Microseconds some task waited for a CPU (Linux PSI), or None without PSI."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                return float(line.rpartition("total=")[2])
    except (OSError, ValueError):
        pass
    return None


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (≤ 4 min)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--only",
        type=lambda s: [x for x in s.split(",") if x],
        default=[],
        help="comma-separated figure names or prefixes (or parts: " + ", ".join(PARTS) + ")",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (full mode)")
    parser.add_argument("--jobs", type=int, default=None, help="pipeline jobs (121 quick, 363)")
    parser.add_argument("--sequential", type=int, default=50, help="jobs for the overhead")
    parser.add_argument("--cached", type=int, default=300, help="identical jobs")
    parser.add_argument("--seconds", type=float, default=None, help="gateway: seconds a cell")
    parser.add_argument("--pool", type=int, default=4, help="PostgreSQL pool per service")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the services during the pipeline part into this folder",
    )
    parser.add_argument(
        "--retry-wait",
        type=float,
        default=20.0,
        help="seconds before a failed part is tried again (once)",
    )
    parser.add_argument("--log-level", default="INFO", help="the services' LOG_LEVEL")
    args = parser.parse_args()
    args.jobs = args.jobs or (121 if args.quick else 363)
    args.seconds = args.seconds or (1.5 if args.quick else 5.0)
    # SIGINT too: a shell that starts us in the background ignores it, and so would Python.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    load0, pressure0 = os.getloadavg()[0], cpu_pressure_us()
    began = time.perf_counter()
    failures: list[str] = []
    try:
        figs = run(args, failures)
    except KeyboardInterrupt as stop:
        log(f"interrupted ({stop}); everything it started is stopped and its namespaces dropped")
        sys.exit(130)
    pressure1, elapsed = cpu_pressure_us(), time.perf_counter() - began
    waited = (
        None
        if pressure0 is None or pressure1 is None
        else 100 * (pressure1 - pressure0) / 1e6 / elapsed
    )
    figs.add(
        "machine.cpu_pressure_pct",
        waited,
        None,
        "%",
        f"share of the run some task waited for a CPU (PSI); load average {load0:.1f} → "
        f"{os.getloadavg()[0]:.1f} on {CORES} cores; shared with other work",
    )
    if failures:
        figs.add("bench.failed_parts", len(failures), None, "parts", "; ".join(failures))
    rows = figs.rows()
    if args.json:
        sys.stdout.write(as_json_lines(rows) + "\n")
    else:
        missing = [n for n in REQUIRED if n not in figs.samples]
        header = (
            f"seoblog performance, {CORES} cores, "
            f"{'quick: 1 round' if args.quick else f'{args.rounds} interleaved rounds, median'}; "
            f"load average {load0:.1f} → {os.getloadavg()[0]:.1f}, CPU pressure "
            f"{'?' if waited is None else f'{waited:.0f} %'} (a shared machine is noisy); "
            f"{elapsed:.0f} s"
        )
        sys.stdout.write(as_table(rows, header) + "\n")
        if missing and not args.only:
            sys.stdout.write(f"\nmissing: {', '.join(missing)}\n")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
