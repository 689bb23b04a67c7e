"""The chaos harness: a private stack (its own PostgreSQL, NATS or a 3-node JetStream cluster,
real service processes with replicas, the fake LLM and an article site), a load driver and the
accounting of what must hold afterwards. Scenarios live in scenarios.py; run.py is the CLI."""

# ruff: noqa: S608 - the SQL names our own namespace's schemas; values go in as parameters

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from seoblog_devstack.infra import redis_answers
from seoblog_testing.cluster import NatsCluster, NatsServer, PostgresServer, scratch_dir
from seoblog_testing.fake_llm import FakeLLM
from seoblog_testing.processes import SERVICES, Stack, build_stack
from seoblog_testing.servers import BackgroundServer, Served

log = logging.getLogger("chaos")

# Every job carries a tag: in its URL, its keywords and every sentence of its article, so each
# LLM request (translation segments included) names the job it is billed to.
TAG_PATTERN = re.compile(r"chaos[a-z]{3}\d{5}")
TERMINAL = ("completed", "failed", "cancelled")
# A job's tag, read from its spec in the gateway's table (keywords are protected from
# translation, so the tag travels in the URL and the article instead).
TAG_SQL = "substring(spec->>'url' from '/a/(chaos[a-z]{3}[0-9]{5})')"
STAGES = ("crawler", "translator", "generator", "gateway", "monitor")


def tag(kind: str, i: int) -> str:
    assert len(kind) == 3
    assert kind.isalpha()
    return f"chaos{kind}{i:05d}"


_SENTENCES = (
    "The {t} river valley has fed farming towns along its banks for many centuries.",
    "Engineers who studied the {t} basin found that spring floods carry rich silt downstream.",
    "Local growers around {t} now plant barley and beans in rotation to protect the soil.",
    "A new bridge over the {t} crossing shortened the market road by almost an hour.",
    "Visitors to {t} often stop at the old mill, where the water wheel still turns in summer.",
    "Historians say the first settlers reached {t} by boat, carrying seed, tools and livestock.",
    "Birdwatchers count herons and kingfishers every morning along the quiet {t} shore.",
    "The council of {t} wants cleaner water, so it pays farmers to leave wide green margins.",
)


def article_html(t: str, paragraphs: int = 6) -> str:
    paras = []
    for p in range(paragraphs):
        sentences = [_SENTENCES[(p + k) % len(_SENTENCES)].format(t=t) for k in range(4)]
        paras.append(f"<p>{' '.join(sentences)}</p>")
        if p == 2:
            paras.append(f"<h2>Farming along the {t} river</h2>")
    body = "\n".join(paras)
    return (
        f"<!doctype html><html lang='en'><head><title>Life on the {t} river</title></head>"
        f"<body><nav><a href='/'>Home</a></nav><article><h1>Life on the {t} river</h1>"
        f"{body}</article><footer>Valley News</footer></body></html>"
    )


class ArticleSite(Served):
    """Serves /a/<tag>: a distinct English article per job (no cache hit between jobs)."""

    def __init__(self) -> None:
        async def robots(_: Request) -> Response:
            return PlainTextResponse("User-agent: *\nAllow: /\n")

        async def article(request: Request) -> Response:
            self.hits += 1
            return Response(article_html(request.path_params["t"]), media_type="text/html")

        self.hits = 0
        app = Starlette(routes=[Route("/robots.txt", robots), Route("/a/{t}", article)])
        self.server = BackgroundServer(app, name="chaos-articles")

    def url(self, t: str) -> str:
        return f"{self.server.url}/a/{t}"


@dataclass
class Result:
    """One scenario's figures; `extra` holds the scenario's own ones."""

    scenario: str
    jobs: int = 0
    completed: int = 0
    failed: int = 0
    stuck: int = 0
    duplicate_posts: int = 0
    double_billed_calls: int = 0
    orphan_jobs: int = 0
    max_stall_s: float = 0.0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        head = {k: v for k, v in self.__dict__.items() if k != "extra"}
        return head | self.extra


class World:
    """Everything one chaos run needs, private to it, on loopback; `stop()` removes it all."""

    def __init__(
        self,
        *,
        cluster: bool = False,
        replicas: dict[str, int] | None = None,
        llm_latency_s: float = 0.2,
        extra_env: dict[str, str] | None = None,
        pg: PostgresServer | None = None,
    ) -> None:
        self.root = scratch_dir()
        self.cluster = cluster
        self.replicas = replicas if replicas is not None else {"generator": 2, "translator": 2}
        # A PostgreSQL may be shared by worlds (each has its own namespace); its owner stops it.
        self.own_pg = pg is None
        self.pg = pg or PostgresServer(self.root / "pg")
        self.nats: NatsServer | NatsCluster = (
            NatsCluster(self.root / "nats") if cluster else NatsServer(self.root / "nats")
        )
        self.llm = FakeLLM(latency_s=llm_latency_s)
        self.llm.job_pattern = TAG_PATTERN
        self.site = ArticleSite()
        self.ns = "chaos" + secrets.token_hex(4)
        self.event_key = secrets.token_hex(32)
        self.extra_env = extra_env or {}
        self.stack: Stack | None = None
        self.http = httpx.AsyncClient(timeout=10)

    # -- lifecycle

    def env(self) -> dict[str, str]:
        redis = "redis://127.0.0.1:6379/0"
        return (
            {
                "NATS_URL": self.nats.url,
                "DATABASE_URL": self.pg.url,
                "REDIS_URL": redis if redis_answers(redis) else "",
                "SEOBLOG_NAMESPACE": self.ns,
                "SEOBLOG_EVENT_KEY": self.event_key,
                "LOG_LEVEL": "INFO",
                "OTEL_TRACES_EXPORTER": "none",
                "LLM_BASE_URL": self.llm.base_url,
                "LLM_API_KEY": self.llm.api_key,
                "LLM_MODEL": "fake-model",
                "LLM_BATCH": "0",
                "CRAWLER_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
                "CRAWLER_HOST_RATE_PER_S": "1000",
                "CRAWLER_HOST_BURST": "1000",
                "CRAWLER_HOST_CONCURRENCY": "64",
                "CRAWLER_EXTRACT_WORKERS": "1",
                "TRANSLATOR_SEGMENT_TOKENS": "160",
                "GATEWAY_OPEN_MODE": "1",
                "GATEWAY_RATE_PER_S": "10000",
                "GATEWAY_RATE_BURST": "10000",
                "GATEWAY_JOBS_PER_S": "10000",
                "GATEWAY_JOBS_BURST": "10000",
                # Streams at three replicas on the cluster (honoured once the bus reads it).
                "NATS_STREAM_REPLICAS": "3" if self.cluster else "1",
                "DB_POOL_MAX": "5",
            }
            | {f"{s.upper()}_DB_POOL_MAX": "5" for s in SERVICES}
            | self.extra_env
        )

    async def start(self) -> World:
        began = time.monotonic()
        if not self.pg.alive:
            await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.nats.start)
        self.llm.start()
        self.site.start()
        self.stack = build_stack(self.env(), SERVICES, self.replicas)
        for svc in self.stack.services.values():
            svc.start()
        await asyncio.to_thread(self.stack.wait_ready, 180)
        log.info("world %s ready in %.1f s", self.ns, time.monotonic() - began)
        return self

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()
        if self.stack is not None:
            await asyncio.to_thread(self.stack.stop)
        for part in (self.site, self.llm):
            with contextlib.suppress(Exception):
                part.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.nats.stop)
        if self.own_pg:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.pg.stop)
        if os.environ.get("CHAOS_KEEP"):
            log.warning("kept %s", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def gateway(self) -> str:
        assert self.stack is not None
        return self.stack.gateway

    def schema(self, service: str) -> str:
        return f'"{self.ns}_{service}"'

    # -- the database, read by the suite (tolerates the database being down)

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record] | None:
        try:
            conn = await asyncio.wait_for(asyncpg.connect(self.pg.url), 3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        try:
            return list(await asyncio.wait_for(conn.fetch(sql, *args), 10))
        except asyncpg.UndefinedTableError:
            return []
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        finally:
            conn.terminate()  # no goodbye to wait for (the server may be going down)

    async def stage_counts(self, like: str) -> dict[str, int] | None:
        """Jobs of one scenario (keyword tag LIKE `like`) each stage has finished."""
        g = self.schema("gateway")
        mine = f"(SELECT job_id FROM {g}.jobs WHERE {TAG_SQL} LIKE $1)"
        sql = {
            "accepted": f"SELECT count(*) FROM {g}.jobs WHERE {TAG_SQL} LIKE $1",
            "crawler": f"SELECT count(*) FROM {self.schema('crawler')}.crawls "
            f"WHERE job_id IN {mine}",
            "translator": f"SELECT count(*) FROM {self.schema('translator')}.translations "
            f"WHERE job_id IN {mine}",
            "generator": f"SELECT count(*) FROM {self.schema('generator')}.posts "
            f"WHERE job_id IN {mine}",
            "gateway": f"SELECT count(*) FROM {g}.jobs WHERE {TAG_SQL} LIKE $1 "
            "AND state IN ('completed', 'failed', 'cancelled')",
            "failed": f"SELECT count(*) FROM {g}.jobs WHERE {TAG_SQL} LIKE $1 "
            "AND state IN ('failed', 'cancelled')",
            "monitor": f"SELECT count(*) FROM {self.schema('monitor')}.job_states "
            f"WHERE rank = 4 AND job_id IN {mine}",
        }
        union = " UNION ALL ".join(f"SELECT '{k}' AS k, ({q}) AS n" for k, q in sql.items())
        rows = await self.query(union, like)
        if rows is None or not rows:
            return None
        return {r["k"]: int(r["n"]) for r in rows}

    async def pipeline_job_ids(self) -> set[str] | None:
        """Job ids any stage holds rows for (a stage that processed a job leaves a row)."""
        ids: set[str] = set()
        tables = {
            "crawler": ("crawls",),
            "translator": ("translations", "segment_calls"),
            "generator": ("posts", "llm_calls"),
            "gateway": ("posts",),
            "monitor": ("job_states",),
        }
        for service, names in tables.items():
            for table in names:
                rows = await self.query(
                    f"SELECT DISTINCT job_id FROM {self.schema(service)}.{table}"
                )
                if rows is None:
                    return None
                ids.update(r["job_id"] for r in rows)
        return ids

    async def gateway_jobs(self, like: str = "%") -> list[asyncpg.Record]:
        g = self.schema("gateway")
        sql = (
            f"SELECT j.job_id, j.state, j.error, {TAG_SQL} AS tag, "
            f"p.event->'usage' AS usage FROM {g}.jobs j LEFT JOIN {g}.posts p USING (job_id) "
            f"WHERE {TAG_SQL} LIKE $1"
        )
        for _ in range(30):
            rows = await self.query(sql, like)
            if rows is not None:
                return rows
            await asyncio.sleep(1)
        raise RuntimeError("the chaos database does not answer")

    async def all_gateway_job_ids(self) -> set[str]:
        rows = await self.query(f"SELECT job_id FROM {self.schema('gateway')}.jobs")
        return {r["job_id"] for r in rows or []}

    # -- the API

    async def submit(self, t: str, answers: Counter[str], **spec: Any) -> str | None:
        """Submit one job until the gateway takes it (same Idempotency-Key on every retry)."""
        body = {
            "url": self.site.url(t),
            "keywords": ["river valley"],
            "target_language": "ko",
            "length": 300,
            "priority": "normal",
        } | spec
        for _ in range(600):
            try:
                reply = await self.http.post(
                    f"{self.gateway}/v1/jobs", json=body, headers={"Idempotency-Key": t}
                )
            except httpx.HTTPError:
                answers["connection_error"] += 1
                await asyncio.sleep(0.5)
                continue
            answers[_answer(reply)] += 1
            if reply.status_code in (200, 202):
                return str(reply.json()["id"])
            if reply.status_code in (400, 409, 422):
                log.warning("submit %s refused: %s", t, reply.text[:300])
                return None
            await asyncio.sleep(min(2.0, float(reply.headers.get("retry-after") or 0.5)))
        return None

    async def submit_all(
        self,
        tags: Iterable[str],
        answers: Counter[str],
        concurrency: int = 8,
        rate_per_s: float | None = None,
        **spec: Any,
    ) -> dict[str, str]:
        slots = asyncio.Semaphore(concurrency)
        ids: dict[str, str] = {}
        began = time.monotonic()

        async def one(i: int, t: str) -> None:
            if rate_per_s:
                await asyncio.sleep(max(0.0, began + i / rate_per_s - time.monotonic()))
            async with slots:
                job = await self.submit(t, answers, **spec)
                if job:
                    ids[t] = job

        await asyncio.gather(*(one(i, t) for i, t in enumerate(tags)))
        return ids

    async def breaker_states(self) -> dict[str, float | None]:
        """The LLM breaker gauge of each translator and generator process (None: no answer)."""
        assert self.stack is not None
        states: dict[str, float | None] = {}
        for svc in self.stack.services.values():
            if svc.module not in ("translator", "generator"):
                continue
            try:
                text = (await self.http.get(f"{svc.url}/metrics", timeout=2)).text
            except httpx.HTTPError:
                states[svc.name] = None
                continue
            found = re.search(r"^seoblog_llm_breaker\w*\{[^}]*\}\s+([0-9.]+)", text, re.M)
            states[svc.name] = float(found.group(1)) if found else None
        return states


def _answer(reply: httpx.Response) -> str:
    status = reply.status_code
    if status == 503:
        return "503+retry-after" if reply.headers.get("retry-after") else "503-no-retry-after"
    return str(status)


class Progress:
    """Samples each stage's finished count every second; a stage stalls while it has work
    (its upstream finished more than it did) and finishes nothing."""

    def __init__(self, world: World, like: str) -> None:
        self.world = world
        self.like = like
        self.last: dict[str, tuple[int, float]] = {}
        self.max_stall: dict[str, float] = defaultdict(float)
        self.measure_from: float | None = None  # stalls count from the first fault on
        self.last_change = time.monotonic()
        self.counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        # The flag as well as the cancel: before 3.12 asyncio.wait_for can swallow a cancel
        # that lands as its inner call completes, and the loop would then run on for good.
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=10)

    async def _run(self) -> None:
        upstream = {
            "crawler": "accepted",
            "translator": "crawler",
            "generator": "translator",
            "gateway": "generator",
            "monitor": "gateway",
        }
        while not self._stopping:
            counts = await self.world.stage_counts(self.like)
            now = time.monotonic()
            if counts is not None:
                if counts != self.counts:
                    self.last_change = now
                self.counts = counts
                for stage in STAGES:
                    n = counts.get(stage, 0)
                    prev = self.last.get(stage)
                    if prev is None or prev[0] != n:
                        self.last[stage] = (n, now)
                    failed = counts.get("failed", 0)
                    pending = counts.get(upstream[stage], 0) - n - failed
                    if stage == "gateway":  # it projects posts; failures count as finished
                        pending = counts.get("generator", 0) - (n - failed)
                    if pending > 0 and self.measure_from is not None:
                        since = max(self.last[stage][1], self.measure_from)
                        self.max_stall[stage] = max(self.max_stall[stage], now - since)
            await asyncio.sleep(1)

    def done(self, expected: int) -> bool:
        return self.counts.get("gateway", 0) >= expected

    async def drain(self, expected: int, idle_s: float, limit_s: float) -> None:
        """Wait until every job is finished, or nothing moved for `idle_s` (the rest is stuck)."""
        deadline = time.monotonic() + limit_s
        self.last_change = time.monotonic()
        while time.monotonic() < deadline and not self.done(expected):
            if time.monotonic() - self.last_change > idle_s:
                break
            await asyncio.sleep(1)


async def account(
    world: World,
    result: Result,
    tags: list[str],
    orphans_before: set[str],
    served_before: int,
) -> Result:
    """The invariants, counted: outcomes, duplicates, orphans, billing against one clean pass."""
    prefix = tags[0][:8] if tags else "chaosxxx"
    rows = await world.gateway_jobs(prefix + "%")
    by_tag: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_tag[row["tag"]].append(row)
    result.jobs = len(tags)
    states = Counter(row["state"] for row in rows)
    result.completed = states["completed"]
    result.failed = states["failed"] + states["cancelled"]
    result.stuck = sum(1 for row in rows if row["state"] not in TERMINAL)
    lost = [t for t in tags if t not in by_tag]
    codes = Counter(
        _error_code(row["error"]) for row in rows if row["state"] in ("failed", "cancelled")
    )
    g, gen = world.schema("gateway"), world.schema("generator")
    dup_rows = await world.query(
        f"SELECT (SELECT count(*) - count(DISTINCT job_id) FROM {g}.posts) "
        f"+ (SELECT count(*) - count(DISTINCT job_id) FROM {gen}.posts) AS n"
    )
    duplicate_jobs = sum(len(v) - 1 for v in by_tag.values() if len(v) > 1)
    completed_twice = sum(
        1 for v in by_tag.values() if sum(r["state"] == "completed" for r in v) > 1
    )
    result.duplicate_posts = int(dup_rows[0]["n"] if dup_rows else 0) + completed_twice
    known = await world.all_gateway_job_ids()
    pipeline = await world.pipeline_job_ids() or set()
    orphans = (pipeline - known) - orphans_before
    result.orphan_jobs = len(orphans)

    served = [c for c in world.llm.served[served_before:]]
    mine = [c for c in served if c.job and c.job.startswith(prefix)]
    per_key = Counter(
        (c.job, c.purpose, c.fingerprint if c.purpose == "translate" else "") for c in mine
    )
    result.double_billed_calls = sum(n - 1 for n in per_key.values())
    served_per_job = Counter(c.job for c in mine)
    mismatched = []
    unconfirmed = 0
    for t, job_rows in by_tag.items():
        done = [r for r in job_rows if r["state"] == "completed" and r["usage"]]
        if not done:
            continue
        usage = _json(done[0]["usage"])
        # `calls` counts every call the job made, those interrupted before their answer was
        # recorded (maybe billed) included; `unconfirmed_calls` says how many of them those are.
        # A call killed between its recorded intent and the request reaching the provider is
        # reported (as unconfirmed: maybe billed) but never served, so the report may exceed
        # what was served by at most the job's unconfirmed calls; it may never fall short.
        reported = int(usage.get("calls", 0))
        maybe = int(usage.get("unconfirmed_calls", 0))
        unconfirmed += maybe
        if not served_per_job[t] <= reported <= served_per_job[t] + maybe:
            mismatched.append((t, reported, served_per_job[t], maybe))
    result.extra.update(
        lost=len(lost),
        duplicate_jobs=duplicate_jobs,
        fail_codes=dict(codes),
        llm_calls_served=len(mine),
        llm_calls_clean_pass=len(per_key),
        llm_calls_by_purpose=dict(Counter(c.purpose for c in mine)),
        llm_calls_unattributed=dict(Counter(c.purpose for c in served if not c.job)),
        llm_calls_for_unknown_tags=sum(
            1 for c in served if c.job and c.job.startswith(prefix) and c.job not in by_tag
        ),
        usage_mismatched_jobs=len(mismatched),
        usage_unconfirmed_calls=unconfirmed,
        usage_mismatch_examples=mismatched[:3],
    )
    if orphans:
        result.extra["orphan_examples"] = sorted(orphans)[:3]
    return result


def _json(value: Any) -> dict[str, Any]:
    import json

    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return value if isinstance(value, dict) else {}


def _error_code(error: Any) -> str:
    data = _json(error) if error else {}
    retryable = data.get("retryable")
    code = str(data.get("code", "?"))
    return f"{code}(retryable)" if retryable else code
