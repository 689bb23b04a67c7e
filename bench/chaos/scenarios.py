"""The chaos scenarios (issue 9): kill -9 under load, NATS and PostgreSQL restarts, a JetStream
cluster losing nodes, LLM faults and outages, and poison messages. Each returns a Result."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from chaos import Progress, Result, World, account, tag

from seoblog_contracts import JobSpec, JobSubmitted, PageCrawled, Subjects, TextTranslated
from seoblog_contracts.signing import sign

log = logging.getLogger("chaos")


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: quick mode fits in six minutes on two cores."""

    kill_jobs: int
    restart_jobs: int
    cluster_jobs: int
    fault_jobs: int
    poison_rounds: int
    good_jobs: int
    outage_s: float
    long_outage_s: float
    stuck_after_s: float
    kill_every_s: float = 10.0
    kill_budget_s: float = 240.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            kill_jobs=120,
            restart_jobs=30,
            cluster_jobs=24,
            fault_jobs=20,
            poison_rounds=2,
            good_jobs=4,
            outage_s=30,
            long_outage_s=35,
            stuck_after_s=30,
            kill_budget_s=70,
        )

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            kill_jobs=1000,
            restart_jobs=300,
            cluster_jobs=300,
            fault_jobs=100,
            poison_rounds=10,
            good_jobs=20,
            outage_s=30,
            long_outage_s=150,
            stuck_after_s=60,
            kill_budget_s=900,
        )


class Scenario:
    """Shared bookkeeping: the scenario's tags, what existed before it, its Progress."""

    def __init__(self, world: World, name: str, kind: str, jobs: int) -> None:
        self.world = world
        self.result = Result(name)
        self.tags = [tag(kind, i) for i in range(jobs)]
        self.kind = kind
        self.answers: Counter[str] = Counter()
        self.began = time.monotonic()

    async def __aenter__(self) -> Scenario:
        self.orphans_before = (await self.world.pipeline_job_ids() or set()) - (
            await self.world.all_gateway_job_ids()
        )
        self.served_before = len(self.world.llm.served)
        self.progress = Progress(self.world, f"chaos{self.kind}%")
        self.progress.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.progress.stop()

    async def finish(self) -> Result:
        r = await account(
            self.world, self.result, self.tags, self.orphans_before, self.served_before
        )
        r.max_stall_s = round(max(self.progress.max_stall.values(), default=0.0), 1)
        r.extra["stall_by_stage_s"] = {
            k: round(v, 1) for k, v in self.progress.max_stall.items() if v
        }
        r.extra["answers"] = dict(self.answers)
        r.seconds = round(time.monotonic() - self.began, 1)
        crashed = [s.name for s in self.world.stack.services.values() if not s.alive]  # type: ignore[union-attr]
        r.extra["crashed_processes"] = crashed
        for name in crashed:  # keep the world usable for the next scenario
            self.world.stack.services[name].start()  # type: ignore[union-attr]
        return r


# -- 1. kill -9 -------------------------------------------------------------------------------


async def kill(world: World, sizes: Sizes, seed: int = 9) -> Result:
    """N jobs; a random service process (replicas included) kill -9'd every ~10 s, restarted."""
    assert world.stack is not None
    rng = random.Random(seed)
    async with Scenario(world, "kill", "kil", sizes.kill_jobs) as sc:
        # Paced so that the kills land all through the run, not after the load is done.
        rate = len(sc.tags) / (sizes.kill_budget_s * 0.7)
        submitting = asyncio.create_task(
            world.submit_all(sc.tags, sc.answers, concurrency=4, rate_per_s=rate)
        )
        kills: list[str] = []
        order: list[str] = []
        began = time.monotonic()
        sc.progress.measure_from = began
        while time.monotonic() - began < sizes.kill_budget_s:
            await asyncio.sleep(sizes.kill_every_s * rng.uniform(0.8, 1.2))
            if submitting.done() and sc.progress.done(len(sc.tags)):
                break
            if not order:  # every process once, in a random order, then again
                order = rng.sample(sorted(world.stack.services), len(world.stack.services))
            victim = order.pop()
            world.stack.services[victim].kill()
            kills.append(victim)
            await asyncio.sleep(0.5)
            world.stack.services[victim].start()
        await submitting
        await sc.progress.drain(len(sc.tags), sizes.stuck_after_s, 600)
        sc.result.extra["kills"] = dict(Counter(kills))
        return await sc.finish()


# -- 2. NATS and PostgreSQL restarts ----------------------------------------------------------


async def _read_during(world: World, answers: Counter[str], stop: asyncio.Event) -> None:
    """Read the API (a job list and one job) while a dependency is down; count the answers."""
    while not stop.is_set():
        for path in ("/v1/jobs?limit=5", "/v1/jobs/job-does-not-exist"):
            try:
                reply = await world.http.get(f"{world.gateway}{path}", timeout=5)
                status = reply.status_code
                key = str(status)
                if status == 503:
                    key = "503+retry-after" if reply.headers.get("retry-after") else "503"
                answers[f"read {key}"] += 1
            except httpx.HTTPError:
                answers["read connection_error"] += 1
        await asyncio.sleep(0.3)


async def restart(world: World, sizes: Sizes, which: str) -> Result:
    """Half the jobs in, the dependency stopped for ~10 s while the other half is submitted and
    the API read, then started again: nothing lost, orphaned or doubled; 503 meanwhile."""
    name, kind = ("nats-restart", "nat") if which == "nats" else ("pg-restart", "pgr")
    server = world.nats if which == "nats" else world.pg
    async with Scenario(world, name, kind, sizes.restart_jobs) as sc:
        half = len(sc.tags) // 2
        await world.submit_all(sc.tags[:half], sc.answers)
        await asyncio.sleep(2)
        sc.progress.measure_from = time.monotonic()
        outage: Counter[str] = Counter()
        stop_reading = asyncio.Event()
        server.stop()  # type: ignore[union-attr]
        down_at = time.monotonic()
        reader = asyncio.create_task(_read_during(world, outage, stop_reading))
        during = asyncio.create_task(world.submit_all(sc.tags[half:], outage, concurrency=4))
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
        stop_reading.set()
        await reader
        await asyncio.to_thread(server.start)  # type: ignore[union-attr]
        sc.result.extra["down_s"] = round(time.monotonic() - down_at, 1)
        await during
        await sc.progress.drain(len(sc.tags), sizes.stuck_after_s, 300)
        sc.result.extra["outage_answers"] = dict(outage)
        sc.result.extra["outage_500s"] = sum(
            n for k, n in outage.items() if k.split()[-1].startswith("50") and "503" not in k
        )
        sc.result.extra["outage_503_without_retry_after"] = sum(
            n for k, n in outage.items() if k.endswith("503") or "no-retry-after" in k
        )
        return await sc.finish()


# -- 3. a 3-node JetStream cluster ------------------------------------------------------------


async def _stream_replicas(world: World, upgrade: bool) -> dict[str, int]:
    """Replicas of the namespace's streams; with `upgrade`, raise them to 3 first (the bus
    declares them at 1 until it has a replicas setting)."""
    subjects = Subjects(world.ns)
    nc = await nats.connect(world.nats.url)
    try:
        js = nc.jetstream()
        found = {}
        for stream in (subjects.stream, subjects.dlq_stream):
            info = await js.stream_info(stream)
            if upgrade and (info.config.num_replicas or 1) < 3:
                info.config.num_replicas = 3
                await js.update_stream(config=info.config)
                info = await js.stream_info(stream)
            found[stream] = info.config.num_replicas or 1
        return found
    finally:
        await nc.close()


async def _stream_leader(world: World) -> str | None:
    nc = await nats.connect(world.nats.url)
    try:
        info = await nc.jetstream().stream_info(Subjects(world.ns).stream)
        return info.cluster.leader if info.cluster else None
    finally:
        await nc.close()


async def cluster(world: World, sizes: Sizes) -> Result:
    """Streams at 3 replicas; kill -9 the stream leader mid-run, bring it back, then another."""
    from seoblog_testing.cluster import NatsCluster

    assert isinstance(world.nats, NatsCluster)
    declared = await _stream_replicas(world, upgrade=False)
    running = await _stream_replicas(world, upgrade=True)
    async with Scenario(world, "cluster", "clu", sizes.cluster_jobs) as sc:
        submitting = asyncio.create_task(world.submit_all(sc.tags, sc.answers, concurrency=4))
        killed = []
        for _ in range(2):
            await asyncio.sleep(4)
            sc.progress.measure_from = sc.progress.measure_from or time.monotonic()
            leader = await _stream_leader(world)
            node = next((n for n in world.nats.nodes if n.name == leader), world.nats.nodes[0])
            if node.name in killed:
                node = next(n for n in world.nats.nodes if n.name not in killed)
            node.kill()
            killed.append(node.name)
            await asyncio.sleep(10)
            await asyncio.to_thread(node.start)
        await submitting
        await sc.progress.drain(len(sc.tags), sizes.stuck_after_s, 300)
        sc.result.extra.update(
            stream_replicas_after=await _stream_replicas(world, upgrade=False),
            killed_nodes=killed,
            stream_replicas_declared_by_services=declared,
            stream_replicas=running,
        )
        return await sc.finish()


# -- 4. LLM faults ----------------------------------------------------------------------------


async def _breakers_while(world: World, seen: dict[str, set[float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for svc, state in (await world.breaker_states()).items():
            if state is not None:
                seen.setdefault(svc, set()).add(state)
        await asyncio.sleep(0.5)


async def llm_faults(world: World, sizes: Sizes) -> Result:
    """The fake LLM answers 20 % of completions 429 or 500: every job completes."""
    async with Scenario(world, "llm-20pct-errors", "flt", sizes.fault_jobs) as sc:
        world.llm.fault_rate = 0.2
        try:
            sc.progress.measure_from = time.monotonic()
            await world.submit_all(sc.tags, sc.answers)
            await sc.progress.drain(len(sc.tags), sizes.stuck_after_s, 300)
        finally:
            world.llm.fault_rate = 0.0
        sc.result.extra["llm_refused"] = world.llm.refused
        return await sc.finish()


async def llm_outage(world: World, sizes: Sizes, seconds: float, long: bool) -> Result:
    """The LLM down for `seconds`, then back. Short: every job completes after recovery and
    each breaker closes again (gauge 0), having shown open (1) and half-open (2). Long: jobs
    fail cleanly with a retryable code."""
    name, kind = (f"llm-down-{seconds:.0f}s", "lng" if long else "out")
    async with Scenario(world, name, kind, sizes.fault_jobs) as sc:
        seen: dict[str, set[float]] = {}
        stop = asyncio.Event()
        watcher = asyncio.create_task(_breakers_while(world, seen, stop))
        await world.submit_all(sc.tags, sc.answers)
        world.llm.down = True
        sc.progress.measure_from = time.monotonic()
        down_at = time.monotonic()
        try:
            if long:
                # Jobs must fail on their own while the LLM stays down.
                await sc.progress.drain(len(sc.tags), max(seconds, sizes.stuck_after_s), seconds)
            else:
                await asyncio.sleep(seconds)
        finally:
            world.llm.down = False
        sc.result.extra["down_s"] = round(time.monotonic() - down_at, 1)
        if long:
            sc.result.extra["finished_while_down"] = sc.progress.counts.get("gateway", 0)
        await sc.progress.drain(len(sc.tags), sizes.stuck_after_s, 300)
        # The breaker must close again once calls succeed: one more job after recovery.
        probe = await _timed_jobs(world, [tag("prb" if long else "pro", 0)], sc)
        sc.result.extra["probe_job_after_recovery_s"] = round(probe[0], 1) if probe else None
        await asyncio.sleep(2)
        stop.set()
        await watcher
        final = await world.breaker_states()
        sc.result.extra.update(
            breaker_states_seen={k: sorted(v) for k, v in seen.items()},
            breaker_final=final,
            breaker_stuck=[k for k, v in final.items() if v not in (0.0, None)],
        )
        return await sc.finish()


# -- 5. poison --------------------------------------------------------------------------------


def _poison_bodies(world: World, t: str, job_id: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each kind of bad message: body and headers (none carry the suite's signature)."""
    spec = JobSpec.model_validate(
        {
            "url": world.site.url(t),
            "keywords": ["river valley"],
            "target_language": "ko",
            "length": 300,
        }
    )
    crawled = PageCrawled(
        job_id=job_id,
        spec=spec,
        url=str(spec.url),
        final_url=str(spec.url),
        title=f"Life on the {t} river",
        text=f"The {t} river valley has fed farming towns. " * 20,
        language="en",
        content_hash="0" * 64,
    )
    translated = TextTranslated(
        job_id=job_id,
        spec=spec,
        source_url=str(spec.url),
        title=f"Life on the {t} river",
        text=f"The {t} river valley has fed farming towns. " * 20,
        source_language="en",
        target_language="ko",
        translated=True,
        content_hash="0" * 64,
    )
    submitted = JobSubmitted(job_id=job_id, spec=spec)
    return {
        "submitted": (submitted.model_dump_json().encode(), {}),
        "crawled": (crawled.model_dump_json().encode(), {}),
        "translated": (translated.model_dump_json().encode(), {}),
    }


async def poison(world: World, sizes: Sizes) -> Result:
    """Bad messages from plain nats-py to every stage's subject: nothing crashes, nothing is
    billed or stored, each is dead-lettered with its reason and consumer, good jobs keep pace."""
    assert world.stack is not None
    subjects = Subjects(world.ns)
    targets = {
        "submitted": [subjects.submitted(p) for p in ("high", "normal", "low")],
        "crawled": [f"{subjects.root}.page.crawled"],
        "translated": [f"{subjects.root}.text.translated"],
        "other": [
            f"{subjects.root}.post.generated",
            f"{subjects.root}.job.progress",
            f"{subjects.root}.job.failed",
        ],
    }
    key = world.event_key.encode()
    pids = {n: s.process.pid for n, s in world.stack.services.items() if s.process}
    async with Scenario(world, "poison", "psn", sizes.good_jobs) as sc:
        # Baseline: good jobs with nothing else going on.
        base_tags = [tag("gud", i) for i in range(sizes.good_jobs)]
        base = await _timed_jobs(world, base_tags, sc)
        nc = await nats.connect(world.nats.url)
        js = nc.jetstream()
        sent: list[tuple[str, int, str]] = []  # (kind, stream seq, subject)
        n = 0
        try:
            for _ in range(sizes.poison_rounds):
                for family, subs in targets.items():
                    for subject in subs:
                        t = tag("psb", n)
                        job = f"job-poison-{n:05d}"
                        n += 1
                        wellformed = _poison_bodies(world, t, job)
                        good_body = wellformed.get(family, wellformed["submitted"])[0]
                        v99 = json.loads(good_body)
                        v99["schema_version"] = 99
                        kinds: dict[str, tuple[bytes, dict[str, str] | None]] = {
                            "invalid_json": (b'{"type": "job.submitted", oops', None),
                            "wrong_shape": (json.dumps({"job_id": 7, "x": []}).encode(), None),
                            "1mb": (b'{"pad": "' + b"x" * 1_000_000 + b'"}', None),
                            "schema_v99": (json.dumps(v99).encode(), {"Nats-Msg-Id": f"p{n}v"}),
                            "no_headers": (good_body, None),
                            "unknown_job": (good_body, {"Nats-Msg-Id": f"p{n}u"}),
                        }
                        # The same bad bodies signed with the services' key, as a buggy
                        # publisher holding the key would send them.
                        for kind in ("invalid_json", "wrong_shape", "schema_v99"):
                            body, headers = kinds[kind]
                            signed = {"Seoblog-Signature": sign(key, body)}
                            if headers:
                                signed["Nats-Msg-Id"] = headers["Nats-Msg-Id"] + "s"
                            kinds[f"signed_{kind}"] = (body, signed)
                        for kind, (body, headers) in kinds.items():
                            ack = await js.publish(subject, body, headers=headers)
                            sent.append((kind, ack.seq, subject))
        finally:
            await nc.close()
        # Good jobs while the stages chew on the poison.
        during_tags = [tag("psn", i) for i in range(sizes.good_jobs)]
        during = await _timed_jobs(world, during_tags, sc)
        await asyncio.sleep(5)
        dlq = await _dead_letters(world)
        poison_tags = [tag("psb", i) for i in range(n)]
        r = await sc.finish()
        crashes = sum(
            1
            for name, svc in world.stack.services.items()
            if svc.process and pids.get(name) != svc.process.pid
        )
        llm_calls = sum(1 for c in world.llm.served[sc.served_before :] if c.job in poison_tags)
        poison_ids = {f"job-poison-{i:05d}" for i in range(n)}
        pipeline = await world.pipeline_job_ids() or set()
        gw = await world.all_gateway_job_ids()
        by_seq: dict[int, list[dict[str, str]]] = {}
        for copy in dlq:
            with contextlib.suppress(ValueError, KeyError, IndexError):
                seq = int(copy["Nats-Msg-Id"].rsplit(":", 1)[1])
                by_seq.setdefault(seq, []).append(copy)
        lettered = [s for s in sent if s[1] in by_seq]
        complete = [
            s
            for s in lettered
            if all(
                c.get("Seoblog-Dlq-Reason") and c.get("Seoblog-Dlq-Consumer") for c in by_seq[s[1]]
            )
        ]
        r.jobs = len(during_tags)
        r.extra.update(
            poison_sent=len(sent),
            poison_dead_lettered=len(lettered),
            poison_dead_lettered_with_reason_and_consumer=len(complete),
            poison_not_dead_lettered=dict(Counter(k for k, s, _ in sent if s not in by_seq)),
            dlq_reasons_by_kind={
                kind: dict(
                    Counter(
                        (c.get("Seoblog-Dlq-Reason") or "")[:40]
                        for k, s, _ in sent
                        if k == kind
                        for c in by_seq.get(s, [])
                    )
                )
                for kind in sorted({k for k, _, _ in sent})
            },
            dlq_copies=len(dlq),
            dlq_consumers=len({c.get("Seoblog-Dlq-Consumer") for c in dlq}),
            dlq_reasons=dict(
                Counter((c.get("Seoblog-Dlq-Reason") or "")[:40] for c in dlq).most_common(8)
            ),
            crashes=crashes,
            poison_llm_calls=llm_calls,
            poison_rows=len((pipeline | gw) & poison_ids),
            good_job_median_s=round(statistics.median(during), 2) if during else None,
            baseline_job_median_s=round(statistics.median(base), 2) if base else None,
        )
        # The baseline's jobs count too: every good job must complete.
        return r


async def _timed_jobs(world: World, tags: list[str], sc: Scenario) -> list[float]:
    """Submit jobs at once and return each one's time to a terminal state."""
    started = time.monotonic()
    ids = await world.submit_all(tags, sc.answers)
    done: dict[str, float] = {}
    deadline = started + 120
    while len(done) < len(ids) and time.monotonic() < deadline:
        rows = await world.gateway_jobs(tags[0][:8] + "%")
        for row in rows:
            if row["tag"] in ids and row["state"] in ("completed", "failed", "cancelled"):
                done.setdefault(row["tag"], time.monotonic() - started)
        await asyncio.sleep(0.5)
    return list(done.values())


async def _dead_letters(world: World) -> list[dict[str, str]]:
    """The headers of every message in the DLQ stream."""
    subjects = Subjects(world.ns)
    nc = await nats.connect(world.nats.url)
    out: list[dict[str, str]] = []
    try:
        js = nc.jetstream()
        info = await js.stream_info(subjects.dlq_stream)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            with contextlib.suppress(Exception):
                msg = await js.get_msg(subjects.dlq_stream, seq)
                out.append(dict(msg.headers or {}))
    finally:
        await nc.close()
    return out


def as_row(r: Result) -> dict[str, Any]:
    return r.as_json()
