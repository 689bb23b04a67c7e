"""Crawler extraction benchmark: what the crawler's process pool runs per page (analyse_page:
extraction, metadata, links, SimHash, compressing page and text; and extract_article alone)
next to one plain `trafilatura.extract` pass per page, over the 121 extraction fixtures in
the same run, interleaved; also F1 on the same pages.

    uv run python bench/crawler/extract_bench.py [--rounds 3] [--json]

CPU time (time.process_time) per page, min and median over the rounds; ratio = ours / one pass.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import trafilatura

from crawler.analysis import analyse_page, warm_up_worker
from crawler.extract import ExtractionError, extract_article, extract_text
from seoblog_testing.site import shared_dir

DATA = shared_dir() / "fixtures" / "extraction"


def load_scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "extraction_score", shared_dir() / "tools" / "extraction_score.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixtures() -> list[tuple[str, str, str | None]]:
    """(id, html, url) of every fixture page, read as extraction_score.py reads them."""
    truth = json.loads((DATA / "ground-truth.json").read_text())
    pages = []
    for item_id in sorted(truth):
        html = gzip.decompress((DATA / "html" / f"{item_id}.html.gz").read_bytes())
        pages.append((item_id, html.decode("utf-8", errors="replace"), truth[item_id].get("url")))
    return pages


def one_pass(html: str, url: str | None) -> None:
    trafilatura.extract(html, url=url)


def ours(html: str, url: str | None) -> None:
    with contextlib.suppress(ExtractionError):
        analyse_page(html, url)


def extraction_only(html: str, url: str | None) -> None:
    with contextlib.suppress(ExtractionError):
        extract_article(html, url)


def cpu_ms_per_page(run: Callable[[str, str | None], None], pages: list[Any]) -> float:
    started = time.process_time()
    for _, html, url in pages:
        run(html, url)
    return (time.process_time() - started) / len(pages) * 1000


def f1(pages: list[tuple[str, str, str | None]]) -> float:
    return f1_of(extract_text, pages)


def f1_of(
    extractor: Callable[[str, str | None], str | None], pages: list[tuple[str, str, str | None]]
) -> float:
    """extraction_score.py's figure (4-gram shingles F1, averaged over pages) for `extractor`."""
    scorer = load_scorer()
    truth = scorer.load_ground_truth(DATA)
    rows = [
        scorer.score_pair(truth[item_id]["articleBody"], extractor(html, url), 4)["shingles"]
        for item_id, html, url in pages
    ]
    return float(scorer.aggregate(rows)["f1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    pages = fixtures()
    warm_up_worker()  # what each extraction process does as it starts
    one_pass(*pages[0][1:])
    base_ms: list[float] = []
    our_ms: list[float] = []
    extract_ms: list[float] = []
    for _ in range(args.rounds):
        base_ms.append(cpu_ms_per_page(one_pass, pages))
        our_ms.append(cpu_ms_per_page(ours, pages))
        extract_ms.append(cpu_ms_per_page(extraction_only, pages))
    score = f1(pages)
    rows = [
        ("crawler.extract.ms_per_page.min", min(our_ms), min(base_ms), "ms"),
        (
            "crawler.extract.ms_per_page.median",
            statistics.median(our_ms),
            statistics.median(base_ms),
            "ms",
        ),
        ("crawler.extract_article.ms_per_page.min", min(extract_ms), min(base_ms), "ms"),
        (
            "crawler.extract_article.ms_per_page.median",
            statistics.median(extract_ms),
            statistics.median(base_ms),
            "ms",
        ),
        ("extraction.f1", score, 0.97, "F1"),
    ]
    if args.json:
        for name, value, baseline, unit in rows:
            line = {
                "name": name,
                "value": round(value, 4),
                "baseline": round(baseline, 4),
                "ratio": round(value / baseline, 3),
                "unit": unit,
            }
            print(json.dumps(line), flush=True)  # noqa: T201 - a bench prints its figures
        return
    out = [
        f"crawler extraction, {len(pages)} fixture pages, CPU per page, {args.rounds} rounds "
        "(baseline: one plain trafilatura.extract pass, same run, interleaved)",
        "",
        "| figure | ours | baseline | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, value, baseline, unit in rows:
        out.append(
            f"| {name} | {value:.3f} {unit} | {baseline:.3f} {unit} | {value / baseline:.2f} |"
        )
    print("\n".join(out), flush=True)  # noqa: T201 - a bench prints its tables


if __name__ == "__main__":
    main()
