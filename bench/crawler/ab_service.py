"""A/B of the crawler as a process: service_bench.py's rounds, taking turns between the
crawler package at a git ref (default HEAD, run from a copy through PYTHONPATH) and the
working tree. CPU per page of the whole process tree and of the service process alone.

    uv run python bench/crawler/ab_service.py [--base HEAD] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from perf.revision import tree_at  # noqa: E402

PACKAGE = "services/crawler/src/crawler"
FIGURES = (
    "cpu_ms_per_page",
    "main_cpu_ms_per_page",
    "rss_total_mb",
    "burst_pages_per_s",
    "later_job_s",  # a sequential job, publish to page.crawled
    "later_fetch_ms",  # its fetch (robots, host turn, GET)
)


def base_copy(ref: str, into: Path) -> Path:
    """A folder holding the crawler package as it is at `ref`."""
    return tree_at(ref, PACKAGE, into).parent


def one_round(pythonpath: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(  # noqa: S603 - our own interpreter and bench
        [sys.executable, str(ROOT / "bench" / "crawler" / "service_bench.py"), "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {row["name"].removeprefix("crawler."): float(row["value"]) for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git ref of the old version")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        old = str(base_copy(args.base, Path(tmp)))
        for n in range(args.rounds):
            for name, path in (("base", old), ("new", None)):
                results[name].append(one_round(path))
                print(  # noqa: T201 - progress
                    f"round {n + 1} {name}: "
                    + ", ".join(f"{k} {results[name][-1][k]:.3g}" for k in FIGURES),
                    file=sys.stderr,
                    flush=True,
                )
    print(  # noqa: T201 - a bench prints its figures
        f"{args.rounds} rounds each, taking turns (min / median; ratio: median of each "
        "round's new / base)"
    )
    for figure in FIGURES:
        cells = []
        for name, rows in results.items():
            values = [r[figure] for r in rows]
            cells.append(f"{name} {min(values):7.3g} / {statistics.median(values):7.3g}")
        ratio = statistics.median(
            new[figure] / base[figure]
            for base, new in zip(results["base"], results["new"], strict=True)
            if base[figure]
        )
        cells.append(f"ratio {ratio:.2f}")
        print(f"  {figure:22} " + "   ".join(cells))  # noqa: T201 - a bench prints figures


if __name__ == "__main__":
    main()
