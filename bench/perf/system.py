"""The system under test: the five services as real processes in a namespace of their own,
the stand-ins they talk to (fixture site, fake LLM), and a client that submits jobs and sees
them finish (the gateway's live snapshots on core NATS, a database poll as the fallback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import redis.asyncio

from seoblog_devstack.infra import Infra, free_port

from .procs import Proc, cpu_seconds

SERVICES = ("crawler", "translator", "generator", "monitor", "gateway")
TERMINAL = ("completed", "failed", "cancelled")


class TimedApp:
    """ASGI wrapper that adds up the time the wrapped app spends per request (server side)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            with self.lock:
                self.seconds += time.perf_counter() - began
                self.count += 1

    def total(self) -> float:
        with self.lock:
            return self.seconds


def service_env(
    infra: Infra, ns: str, llm_base_url: str, llm_key: str, log_level: str, pool: int
) -> dict[str, str]:
    """Environment shared by the five services: our infrastructure and namespace, the fake
    LLM, small pools, and politeness opened up (every fixture page is on one loopback host)."""
    env = dict(os.environ) | {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url or "",
        "SEOBLOG_NAMESPACE": ns,
        "SEOBLOG_EVENT_KEY": secrets.token_hex(32),
        "LOG_LEVEL": log_level,
        "OTEL_TRACES_EXPORTER": "none",
        "PYTHONUNBUFFERED": "1",
        "LLM_BASE_URL": llm_base_url,
        "LLM_API_KEY": llm_key,
        "LLM_MODEL": "fake-llm",
        "CRAWLER_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
        "CRAWLER_HOST_RATE_PER_S": "100000",
        "CRAWLER_HOST_BURST": "100000",
        "CRAWLER_HOST_CONCURRENCY": "64",
        "GATEWAY_OPEN_MODE": "1",
        "GATEWAY_RATE_PER_S": "1000000",
        "GATEWAY_RATE_BURST": "1000000",
        "GATEWAY_JOBS_PER_S": "1000000",
        "GATEWAY_JOBS_BURST": "1000000",
    }
    for name in SERVICES:
        env[f"{name.upper()}_DB_POOL_MAX"] = str(pool)
        env[f"{name.upper()}_HOST"] = "127.0.0.1"
    return env


@dataclass
class Stack:
    """The five services as processes; `start()` returns the seconds until every /readyz
    answered 200 (the `seoblog up` figure)."""

    env: dict[str, str]
    logs: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, timeout_s: float = 120.0) -> float:
        began = time.perf_counter()
        for name in SERVICES:
            port = free_port()
            self.ports[name] = port
            env = self.env | {f"{name.upper()}_PORT": str(port), "OTEL_SERVICE_NAME": name}
            self.procs[name] = Proc(
                name, [sys.executable, "-m", name], env, self.logs / f"{name}.log"
            ).start()
        pending = set(SERVICES)
        deadline = began + timeout_s
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for name in sorted(pending):
                    if not self.procs[name].alive():
                        raise RuntimeError(f"{name} exited:\n{self.procs[name].tail()}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{self.url(name)}/readyz").status_code == 200:
                            pending.discard(name)
                if not pending:
                    break
                if time.perf_counter() > deadline:
                    tails = "\n".join(f"== {n}\n{self.procs[n].tail(1500)}" for n in pending)
                    raise RuntimeError(f"not ready in {timeout_s:g} s: {sorted(pending)}\n{tails}")
                time.sleep(0.02)
        return time.perf_counter() - began

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


class Jobs:
    """Submits jobs to the gateway and learns when each one ends."""

    def __init__(self, gateway: str, infra: Infra, ns: str, key: str | None = None) -> None:
        self.gateway = gateway
        self.infra = infra
        self.ns = ns
        self.root = f"{ns}.seo"
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.done: dict[str, tuple[str, float]] = {}  # job id -> (state, when it was seen)
        self.waiters: dict[str, asyncio.Event] = {}
        self.fetch_ms: dict[str, float] = {}  # from each job's page.crawled event
        self.live_seen = 0
        self.seen_wall: dict[str, float] = {}  # job id -> epoch seconds it was seen to end
        self.result_cache_hits = 0  # submits answered from the gateway's result cache
        self.nc: Any = None
        self.pg: asyncpg.Connection | None = None
        self.http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Jobs:
        self.nc = await nats.connect(self.infra.nats_url)
        await self.nc.subscribe(f"{self.root}.live.*", cb=self._on_live)
        await self.nc.subscribe(f"{self.root}.page.crawled", cb=self._on_crawled)
        self.pg = await asyncpg.connect(self.infra.database_url)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self.http = httpx.AsyncClient(base_url=self.gateway, timeout=30, limits=limits)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.aclose()
        if self.pg is not None:
            await self.pg.close()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    def _finish(self, job_id: str, state: str, when: float) -> None:
        if state in TERMINAL and job_id not in self.done:
            self.done[job_id] = (state, when)
            self.seen_wall[job_id] = time.time() - (time.perf_counter() - when)
            waiter = self.waiters.get(job_id)
            if waiter is not None:
                waiter.set()

    async def _on_live(self, msg: Any) -> None:
        when = time.perf_counter()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            snapshot = json.loads(msg.data)
            self.live_seen += 1
            self._finish(str(snapshot["id"]), str(snapshot["state"]), when)

    async def _on_crawled(self, msg: Any) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            event = json.loads(msg.data)
            self.fetch_ms[str(event["job_id"])] = float(event["metadata"]["fetch_ms"])

    async def submit(self, body: dict[str, Any]) -> str:
        assert self.http is not None
        for attempt in range(5):
            made = await self.http.post("/v1/jobs", json=body, headers=self.headers)
            if made.status_code in (200, 201, 202):
                job = made.json()
                job_id = str(job["id"])
                self.waiters.setdefault(job_id, asyncio.Event())
                # A result-cache hit is created finished: the answer is its completion.
                self.result_cache_hits += 1 if job.get("cached_from") else 0
                self._finish(job_id, str(job.get("state", "")), time.perf_counter())
                return job_id
            if made.status_code not in (429, 503) or attempt == 4:
                raise RuntimeError(f"submit answered {made.status_code}: {made.text[:300]}")
            await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def submit_many(self, bodies: Iterable[dict[str, Any]], connections: int) -> list[str]:
        queue = list(enumerate(bodies))
        ids: list[str] = [""] * len(queue)
        queue.reverse()

        async def worker() -> None:
            while queue:
                i, body = queue.pop()
                ids[i] = await self.submit(body)

        await asyncio.gather(*(worker() for _ in range(connections)))
        return ids

    async def _poll(self, ids: list[str]) -> None:
        """The fallback when live snapshots are missing: the gateway's own table."""
        assert self.pg is not None
        pending = [i for i in ids if i not in self.done]
        if not pending:
            return
        with contextlib.suppress(asyncpg.PostgresError):
            rows = await self.pg.fetch(
                f'SELECT job_id, state FROM "{self.ns}_gateway".jobs'  # noqa: S608 - our schema
                " WHERE job_id = ANY($1::text[]) AND state = ANY($2::text[])",
                pending,
                list(TERMINAL),
            )
            now = time.perf_counter()
            for row in rows:
                self._finish(row["job_id"], row["state"], now)

    async def wait_all(self, ids: list[str], timeout_s: float, poll_s: float = 0.25) -> float:
        """Wait until every job ended; the perf_counter time the last one was seen."""
        deadline = time.perf_counter() + timeout_s
        while any(i not in self.done for i in ids):
            if time.perf_counter() > deadline:
                left = sum(1 for i in ids if i not in self.done)
                raise TimeoutError(f"{left} of {len(ids)} jobs not finished in {timeout_s:g} s")
            await asyncio.sleep(poll_s)
            await self._poll(ids)
        return max(self.done[i][1] for i in ids)

    async def wait_one(self, job_id: str, timeout_s: float) -> float:
        """When the job was seen to end: its live snapshot, else a 50 ms database poll."""
        waiter = self.waiters.setdefault(job_id, asyncio.Event())
        deadline = time.perf_counter() + timeout_s
        while job_id not in self.done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), 0.05)
            if job_id not in self.done:
                await self._poll([job_id])
            if time.perf_counter() > deadline:
                raise TimeoutError(f"job {job_id} not finished in {timeout_s:g} s")
        return self.done[job_id][1]

    async def stages_ms(self, job_id: str) -> dict[str, float]:
        """Milliseconds between the job's recorded states (their events' times), and from
        `completed` until this client saw it."""
        assert self.http is not None
        job = (await self.http.get(f"/v1/jobs/{job_id}", headers=self.headers)).json()
        at = {h["state"]: datetime.fromisoformat(h["at"]).timestamp() for h in job["history"]}
        out = {}
        for a, b in (
            ("queued", "crawling"),
            ("crawling", "translating"),
            ("translating", "generating"),
            ("generating", "completed"),
        ):
            if a in at and b in at:
                out[f"{a}->{b}"] = 1000 * (at[b] - at[a])
        if "completed" in at and job_id in self.seen_wall:
            out["completed->seen"] = 1000 * (self.seen_wall[job_id] - at["completed"])
        return out

    async def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until every consumer of the namespace's stream has nothing pending or unacked, so a
        part does not pay for the backlog the one before it left (best effort)."""
        js = self.nc.jetstream()
        stream = f"{self.ns.upper()}_SEO"
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            try:
                consumers = await js.consumers_info(stream)
            except Exception:  # a missing stream or API: nothing to wait for
                return
            if all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers):
                return
            await asyncio.sleep(0.1)

    async def footprint(self) -> tuple[int, int, int]:
        """(messages, bytes) in the namespace's stream and bytes of its PostgreSQL schemas."""
        messages = size = 0
        with contextlib.suppress(Exception):
            info = await self.nc.jetstream().stream_info(f"{self.ns.upper()}_SEO")
            messages, size = int(info.state.messages), int(info.state.bytes)
        assert self.pg is not None
        tables = await self.pg.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname LIKE $1 AND c.relkind IN ('r', 'm')",
            f"{self.ns}\\_%",
        )
        return messages, size, int(tables)

    async def backend_cpu(self) -> dict[str, float]:
        """CPU seconds so far of the PostgreSQL backends of each service's pool (by the
        `application_name` each store sets: `seoblog:<namespace>_<service>`)."""
        assert self.pg is not None
        rows = await self.pg.fetch(
            "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE $1",
            f"seoblog:{self.ns}\\_%",
        )
        used: dict[str, float] = {}
        for row in rows:
            service = str(row["application_name"]).removeprefix(f"seoblog:{self.ns}_")
            with contextlib.suppress(OSError):
                used[service] = used.get(service, 0.0) + cpu_seconds(int(row["pid"]))
        return used

    async def row_writes(self) -> dict[str, int]:
        """Rows inserted, updated and deleted so far per table of the namespace's schemas
        (PostgreSQL's cumulative statistics; a backend reports them within about a second)."""
        assert self.pg is not None
        rows = await self.pg.fetch(
            "SELECT schemaname || '.' || relname AS t, n_tup_ins + n_tup_upd + n_tup_del AS w"
            " FROM pg_stat_user_tables WHERE schemaname LIKE $1",
            f"{self.ns}\\_%",
        )
        return {str(r["t"]).removeprefix(f"{self.ns}_"): int(r["w"]) for r in rows}

    def failed(self, ids: list[str]) -> int:
        return sum(1 for i in ids if self.done.get(i, ("", 0))[0] != "completed")


def metric_sum(text: str, name: str) -> float:
    """Sum over every label set of a Prometheus sample named `name` in exposition text."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", re.M)
    for match in pattern.finditer(text):
        total += float(match.group(1))
    return total


async def drop_everything(infra: Infra, ns: str) -> None:
    """Every stream whose name starts with the namespace, and every schema `<ns>_*`."""
    with contextlib.suppress(Exception):
        nc = await nats.connect(infra.nats_url)
        js = nc.jetstream()
        prefix = ns.upper() + "_"
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith(prefix):
                with contextlib.suppress(Exception):
                    await js.delete_stream(info.config.name)
        await nc.close()
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(infra.database_url)
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{ns}\\_%"
        )
        for row in rows:
            await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        await conn.close()
    if infra.redis_url:
        with contextlib.suppress(Exception):
            client = redis.asyncio.Redis.from_url(infra.redis_url)
            keys = [k async for k in client.scan_iter(match=f"{ns}:*", count=1000)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
            await client.aclose()
