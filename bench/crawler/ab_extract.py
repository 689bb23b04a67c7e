"""A/B of the crawler's extraction worker: the crawler package at a git ref (default HEAD)
against the working tree, in one process, interleaved, over the 121 extraction fixtures.

    uv run python bench/crawler/ab_extract.py [--base HEAD] [--rounds 5]

Per page, CPU time (time.process_time): analyse_page (what a worker runs), and what crossing
the process boundary costs (pickling the call and its result, the bytes sent). Then whether
the two agree: every Article field compared page by page, and F1 of each (extract_text).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pickle
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path
from types import ModuleType
from typing import Any

from extract_bench import f1_of, fixtures

from crawler.article import Article, ExtractionError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from perf.revision import tree_at  # noqa: E402

PACKAGE = "services/crawler/src/crawler"


def base_package(ref: str, into: Path) -> str:
    """The crawler package as it is at `ref`, importable as `crawler_base`."""
    tree_at(ref, PACKAGE, into).rename(into / "crawler_base")
    sys.path.insert(0, str(into))
    return "crawler_base"


def load(package: str) -> tuple[ModuleType, ModuleType]:
    analysis = importlib.import_module(f"{package}.analysis")
    extract = importlib.import_module(f"{package}.extract")
    analysis.warm_up_worker()
    return analysis, extract


def run_pages(analysis: ModuleType, pages: list[Any]) -> tuple[float, float, int]:
    """CPU ms per page in analyse_page, CPU ms per page pickling (call and result, both
    ways), bytes per page across the boundary."""
    work = pickling = 0.0
    sent = 0
    for _, html, url in pages:
        started = time.process_time()
        call = pickle.dumps((analysis.analyse_page, (html, url, "default"), {}))
        pickle.loads(call)  # noqa: S301 - what we just pickled
        middle = time.process_time()
        try:
            result: Any = analysis.analyse_page(html, url)
        except ExtractionError as exc:
            result = exc
        done = time.process_time()
        back = pickle.dumps(result)
        pickle.loads(back)  # noqa: S301 - what we just pickled
        pickling += time.process_time() - done + middle - started
        work += done - middle
        sent += len(call) + len(back)
    n = len(pages)
    return work / n * 1000, pickling / n * 1000, sent // n


def articles(analysis: ModuleType, pages: list[Any]) -> dict[str, Article | None]:
    out: dict[str, Article | None] = {}
    for item_id, html, url in pages:
        try:
            out[item_id] = analysis.analyse_page(html, url).article
        except ExtractionError:
            out[item_id] = None
    return out


def compare(old: dict[str, Article | None], new: dict[str, Article | None]) -> list[str]:
    lines = []
    for field in [f.name for f in fields(Article)]:
        differ = [
            item_id
            for item_id in old
            if (old[item_id] is None) != (new[item_id] is None)
            or (
                old[item_id] is not None
                and asdict(old[item_id])[field] != asdict(new[item_id])[field]  # type: ignore[arg-type]
            )
        ]
        if differ:
            lines.append(f"  {field}: {len(differ)} pages differ, e.g. {', '.join(differ[:5])}")
    return lines or ["  every field of every page is the same"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git ref of the old version")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-compare", action="store_true", help="timings only")
    args = parser.parse_args()
    pages = fixtures()
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"base": load(base_package(args.base, Path(tmp))), "new": load("crawler")}
        timings: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (analysis, _) in variants.items():
                timings[name].append(run_pages(analysis, pages))
        print(f"{len(pages)} pages, {args.rounds} rounds, CPU ms per page (min / median)")  # noqa: T201
        for name, rows in timings.items():
            work = [r[0] for r in rows]
            pickled = [r[1] for r in rows]
            print(  # noqa: T201 - a bench prints its figures
                f"  {name:5} analyse_page {min(work):6.2f} / {statistics.median(work):6.2f}"
                f"   pickling {min(pickled):5.2f} / {statistics.median(pickled):5.2f}"
                f"   {rows[0][2] / 1000:7.1f} kB across"
            )
        if args.no_compare:
            return
        for name, (_, extract) in variants.items():
            print(f"  {name:5} F1 {f1_of(extract.extract_text, pages):.4f}")  # noqa: T201
        old = articles(variants["base"][0], pages)
        new = articles(variants["new"][0], pages)
        print("\n".join(compare(old, new)))  # noqa: T201


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
