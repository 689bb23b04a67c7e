"""LLM work benchmark: what the cache, single flight and the Batch API save on a workload with
repeats and mixed priorities, and how close the rate limiter runs to a provider's limit.

Runs against the fake OpenAI-compatible server on 127.0.0.1 (its tokenizer: 4 characters a
token), with the translator's and generator's real code paths and the in-process cache (no
Redis needed). Prices: gpt-4o-mini's ($0.15 / $0.60 per million tokens; batch half price).

    uv run python bench/llm/run.py [--jobs 60] [--articles 12] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from generator.llm_writer import build_prompt, write_with_llm
from seoblog_runtime import Cache, JobError
from seoblog_runtime.llm import Llm, LlmServiceSettings
from seoblog_testing.fake_llm import FakeLLM, default_responder
from translator.translate import translate_document

TOPICS = ["Europa", "Io", "Ganymede", "Callisto", "Titan", "Enceladus", "Triton", "Mimas"]


def article(n: int) -> str:
    """A deterministic article of about 700 words, different for every n."""
    rng = random.Random(n)
    words = ["ocean", "ice", "probe", "plume", "tide", "crust", "orbit", "magnetic", "salt"]
    paragraphs = []
    for p in range(8):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(9, 16))).capitalize() + "."
            for _ in range(6)
        ]
        heading = f"## {TOPICS[n % len(TOPICS)]} part {p}\n\n" if p % 3 == 0 else ""
        paragraphs.append(heading + " ".join(sentences))
    return "\n\n".join(paragraphs)


@dataclass(frozen=True)
class Job:
    article: int
    low: bool
    arrives_s: float


def workload(jobs: int, articles: int, seed: int = 7) -> list[Job]:
    """Each article asked for jobs/articles times, a third of jobs low priority, arrivals
    spread over two seconds so some repeats overlap (single flight) and some follow (cache)."""
    rng = random.Random(seed)
    return [Job(i % articles, low=(i % 3 == 0), arrives_s=rng.uniform(0, 2.0)) for i in range(jobs)]


class NoCache(Cache):
    """Every lookup misses and nothing is shared: the baseline."""

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[bytes]], ttl_s: float | None = None
    ) -> bytes:
        return await compute()


def settings(fake: FakeLLM, **overrides: Any) -> LlmServiceSettings:
    values: dict[str, Any] = {
        "llm_base_url": fake.base_url,
        "llm_api_key": fake.api_key,
        "llm_model": "gpt-4o-mini",
        "llm_batch_max_items": 50,
        "llm_batch_max_age_s": 0.5,
        "llm_batch_poll_s": 0.1,
        "llm_retry_initial_s": 0.05,
    } | overrides
    return LlmServiceSettings(_env_file=None, **values)


async def run_job(job: Job, llm: Llm, cache: Cache) -> None:
    await asyncio.sleep(job.arrives_s)

    async def progress(done: int, total: int) -> None:
        return None

    translation = await translate_document(
        article(job.article),
        target="de",
        glossary=[TOPICS[job.article % len(TOPICS)]],
        llm=llm,
        cache=cache,
        prompt_version="translate-v1",
        max_tokens=400,
        concurrency=4,
        on_segment=progress,
        low_priority=job.low,
    )
    prompt = build_prompt(
        "post_v1",
        title=f"News from {TOPICS[job.article % len(TOPICS)]}",
        text=translation.text,
        keywords=["ocean"],
        language="de",
        length=600,
    )

    async def generate() -> bytes:
        draft, _ = await write_with_llm(
            llm,
            messages=[{"role": "user", "content": prompt}],
            keywords=["ocean"],
            language="de",
            length=600,
            on_progress=None,
            low_priority=job.low,
        )
        return json.dumps(draft.title).encode()

    await cache.get_or_compute(f"post:{job.article}", generate)


async def cost_row(name: str, jobs: list[Job], fake: FakeLLM, **knobs: Any) -> list[str]:
    fake.reset()
    fake.latency_s = 0.05
    fake.batch_delay_s = 0.3
    cached = knobs.pop("cache")
    llm = Llm(settings(fake, **knobs), trace.get_tracer("bench"))
    cache = Cache("bench") if cached else NoCache("bench")
    started = time.perf_counter()
    await asyncio.gather(*(run_job(job, llm, cache) for job in jobs))
    elapsed = time.perf_counter() - started
    await llm.close()
    s = llm.stats
    return [
        name,
        str(s.calls),
        str(s.batched),
        f"{s.prompt_tokens + s.completion_tokens:,}",
        f"${s.cost_usd:.4f}",
        f"{elapsed:.1f}",
    ]


async def throughput_row(
    name: str, fake: FakeLLM, requests: int, concurrency: int, **knobs: Any
) -> list[str]:
    fake.reset()
    fake.latency_s = 2.0
    fake.rpm_limit = 600
    fake.responder = default_responder
    llm = Llm(settings(fake, llm_max_retries=10, **knobs), trace.get_tracer("bench"))
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        async with gate:
            try:
                await llm.complete(
                    [{"role": "user", "content": f"Say hello to moon {i}."}], purpose="bench"
                )
            except JobError:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    elapsed = time.perf_counter() - started
    await llm.close()
    rpm = (requests - failed) / elapsed * 60
    return [
        name,
        str(requests),
        str(failed),
        f"{elapsed:.1f}",
        f"{rpm:.0f}",
        f"{rpm / 600:.2f}",
        str(fake.rate_limited),
        str(llm.stats.retries),
    ]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| "
        + " | ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        + " |"
        for r in rows
    ]
    return "\n".join([line, rule, *body])


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--articles", type=int, default=12)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=40)
    args = parser.parse_args()
    jobs = workload(args.jobs, args.articles)
    low = sum(j.low for j in jobs)
    with FakeLLM(models=("gpt-4o-mini",)) as fake:
        rows = [
            await cost_row("no cache, no single flight", jobs, fake, cache=False, llm_batch=False),
            await cost_row("cache + single flight", jobs, fake, cache=True, llm_batch=False),
            await cost_row("cache + single flight + batch (low)", jobs, fake, cache=True),
        ]
        header = ["configuration", "LLM calls", "batched", "tokens", "cost", "wall s"]
        sys_out = [
            f"LLM cost: {args.jobs} jobs over {args.articles} articles ({low} low priority),"
            " each a translation (segments) and a post",
            table(header, rows),
            "",
        ]
        print("\n".join(sys_out), flush=True)  # noqa: T201 - a bench prints its tables
        rows = [
            await throughput_row(
                "limiter at 600 RPM", fake, args.requests, args.concurrency, llm_rpm=600
            ),
            await throughput_row(
                "no limiter (retries only)", fake, args.requests, args.concurrency
            ),
        ]
        header = ["client", "requests", "failed", "wall s", "RPM", "of limit", "429s", "retries"]
        print(  # noqa: T201
            f"Throughput: fake provider with 2 s latency and a 600 RPM limit,"
            f" {args.concurrency} requests in flight\n" + table(header, rows)
        )


if __name__ == "__main__":
    asyncio.run(main())
