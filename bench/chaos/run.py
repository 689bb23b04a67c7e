"""Chaos suite (issue 9): what holds when processes are kill -9'd, NATS or PostgreSQL restart,
a JetStream cluster node dies, the LLM fails or goes away, and poison reaches every stage.

Starts its own PostgreSQL, NATS (and a 3-node JetStream cluster), fake LLM, article site and
real service processes (2 translator and 2 generator replicas), all on 127.0.0.1, and stops
them at the end. Prints one row per scenario (a table, or JSON lines with --json).

    uv run python bench/chaos/run.py --quick --json     # about six minutes on two cores
    uv run python bench/chaos/run.py                     # full size: 1,000 jobs under kill -9
    uv run python bench/chaos/run.py --only poison,kill  # some scenarios
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos import Result, World
from scenarios import Sizes, cluster, kill, llm_faults, llm_outage, poison, restart

from seoblog_testing.cluster import PostgresServer, scratch_dir

log = logging.getLogger("chaos")

SINGLE = ("poison", "llm-faults", "llm-outage", "llm-outage-long", "nats-restart", "pg-restart")
ORDER = (*SINGLE, "kill", "cluster")
COLUMNS = (
    "scenario",
    "jobs",
    "completed",
    "failed",
    "stuck",
    "duplicate_posts",
    "double_billed_calls",
    "orphan_jobs",
    "max_stall_s",
    "seconds",
)


def _plan(sizes: Sizes) -> dict[str, Callable[[World], Awaitable[Result]]]:
    return {
        "poison": lambda w: poison(w, sizes),
        "llm-faults": lambda w: llm_faults(w, sizes),
        "llm-outage": lambda w: llm_outage(w, sizes, sizes.outage_s, long=False),
        "llm-outage-long": lambda w: llm_outage(w, sizes, sizes.long_outage_s, long=True),
        "nats-restart": lambda w: restart(w, sizes, "nats"),
        "pg-restart": lambda w: restart(w, sizes, "pg"),
        "kill": lambda w: kill(w, sizes),
        "cluster": lambda w: cluster(w, sizes),
    }


async def run(names: list[str], sizes: Sizes, emit: Callable[[Result], None]) -> list[Result]:
    """The single-node scenarios in one world, the cluster in a second one that starts while
    the first stops; both share one private PostgreSQL (each world has its own namespace)."""
    plan = _plan(sizes)
    results: list[Result] = []
    root = scratch_dir()
    pg = PostgresServer(root / "pg")
    try:
        await asyncio.to_thread(pg.start)
        first = World(pg=pg) if any(n != "cluster" for n in names) else None
        if first is not None:
            try:
                await first.start()
                for name in (n for n in names if n != "cluster"):
                    log.info("scenario %s", name)
                    results.append(await plan[name](first))
                    emit(results[-1])
            except BaseException:
                await first.stop()
                raise
        second = World(cluster=True, pg=pg) if "cluster" in names else None
        try:
            await asyncio.gather(
                *([first.stop()] if first else []), *([second.start()] if second else [])
            )
            if second is not None:
                results.append(await plan["cluster"](second))
                emit(results[-1])
        finally:
            if second is not None:
                await second.stop()
    finally:
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(root, ignore_errors=True)
    return results


def table(results: list[Result]) -> str:
    rows = [[str(r.as_json()[c]) for c in COLUMNS] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
    line = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled down (about 6 minutes)")
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    names = [n for n in ORDER if not args.only or n in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(ORDER)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    began = time.monotonic()

    def emit(result: Result) -> None:
        if args.json:
            print(json.dumps(result.as_json(), default=str), flush=True)  # noqa: T201
        else:
            log.warning("%s done in %.0f s", result.scenario, result.seconds)

    results = asyncio.run(run(names, sizes, emit))
    if not args.json:
        print(table(results))  # noqa: T201
        print(f"\n{time.monotonic() - began:.0f} s in all")  # noqa: T201
        for r in results:
            print(f"\n{r.scenario}: {json.dumps(r.extra, default=str)}")  # noqa: T201


if __name__ == "__main__":
    main()
