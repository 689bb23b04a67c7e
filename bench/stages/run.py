"""CPU per job of the translator's and generator's own work (no LLM, no I/O) over the 121
fixture articles, beside a baseline measured in the same run and process.

    uv run python bench/stages/run.py [--rounds 5] [--quick] [--json]

Figures (CPU milliseconds per article, `time.process_time`, the best round; the table shows
the median too):
- translator: `detect_language` (lingua, the configured language set, its `SAMPLE_CHARS` sample)
  and segmenting (`split_segments` at the default 800 tokens, plus `protect` of each segment
  with two glossary terms), as the translator runs them for each job;
- generator: the offline writer (`write_offline`) and the SEO report (`seo_report`) of its
  draft, as the generator runs them for each job without an LLM.
Baseline: one pass of the precompiled Unicode regex `\\w+` over the same article
(`findall`): touching every character once in C, the least any text stage can do. The ratio
says how many such passes a stage costs. Rounds interleave the measures, so machine noise
spreads over all of them alike.
Memory: RSS growth of a fresh interpreter that builds the detector and judges every article,
for the configured language set against all 75 languages lingua knows.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from generator.offline import write_offline
from generator.seo import seo_report
from translator.detect import LANGUAGES, detect_language
from translator.segment import protect, split_segments

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared/fixtures/extraction"
KEYWORDS = ["water", "science"]
_WORD = re.compile(r"\w+")

_RSS_PROBE = """
import json, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
from translator.detect import detect_language
texts = json.load(open(sys.argv[1]))
before = rss()
languages = tuple(json.loads(sys.argv[2]))
for text in texts:
    detect_language(text, languages)
print(rss() - before)
"""


def articles() -> list[str]:
    truth = json.loads((FIXTURES / "ground-truth.json").read_text())
    return [str(v["articleBody"]) for v in truth.values() if v.get("articleBody")]


def title_of(text: str) -> str:
    return text.split(".")[0][:80].strip() or "Article"


def cpu_ms_per_job(work: Callable[[str], object], texts: list[str]) -> float:
    started = time.process_time()
    for text in texts:
        work(text)
    return 1000 * (time.process_time() - started) / len(texts)


def detect(text: str) -> object:
    return detect_language(text)


def segment(text: str) -> object:
    return [protect(s, KEYWORDS) for s in split_segments(f"# {title_of(text)}\n\n{text}", 800)]


def write(text: str) -> object:
    return write_offline(
        title=title_of(text), text=text, keywords=KEYWORDS, language="en", length=800
    )


def measures(texts: list[str]) -> dict[str, Callable[[str], object]]:
    drafts = {text: write(text) for text in texts}  # scoring is timed on its own

    def score(text: str) -> object:
        d = drafts[text]  # type: ignore[attr-defined]
        return seo_report(
            title=d.title,
            slug=d.slug,
            meta_description=d.meta_description,
            markdown=d.markdown,
            keywords=KEYWORDS,
            target_words=800,
            source_text=text,
        )

    return {
        "baseline": lambda text: _WORD.findall(text),
        "translator.detect": detect,
        "translator.segment": segment,
        "generator.write": write,
        "generator.score": score,
    }


def detector_mb(texts: list[str], languages: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="seoblog-stages-") as folder:
        path = Path(folder) / "texts.json"
        path.write_text(json.dumps(texts))
        out = subprocess.run(  # noqa: S603 - our own interpreter and probe
            [sys.executable, "-c", _RSS_PROBE, str(path), json.dumps(languages)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    return float(out.stdout.strip().splitlines()[-1])


def figure(
    name: str, value: float, baseline: float, unit: str, **extra: object
) -> dict[str, object]:
    ratio = value / baseline if baseline else None
    return {
        "name": name,
        "value": round(value, 3),
        "baseline": round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 2),
        "unit": unit,
        **extra,
    }


def run(rounds: int) -> list[dict[str, object]]:
    texts = articles()
    work = measures(texts)
    for fn in work.values():  # warm up: detector built, models loaded, caches primed
        for text in texts[:10]:
            fn(text)
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, fn in work.items():
            times[name].append(cpu_ms_per_job(fn, texts))
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    best["translator.detect_segment"] = best["translator.detect"] + best["translator.segment"]
    best["generator.write_score"] = best["generator.write"] + best["generator.score"]
    median["translator.detect_segment"] = median["translator.detect"] + median["translator.segment"]
    median["generator.write_score"] = median["generator.write"] + median["generator.score"]
    base = best.pop("baseline")
    base_median = median.pop("baseline")
    note = f"{len(texts)} fixture articles, best of {rounds} rounds; baseline one \\w+ regex pass"
    out = [
        figure(
            f"stages.{name}_ms_per_job",
            value,
            base,
            "ms",
            median=round(median[name], 3),
            baseline_median=round(base_median, 3),
            note=note,
        )
        for name, value in best.items()
    ]
    configured = detector_mb(texts, LANGUAGES)
    every = detector_mb(texts, [])
    out.append(
        figure(
            "stages.translator.detector_mb",
            configured,
            every,
            "MB",
            note=f"RSS growth: {len(LANGUAGES)} languages vs all 75 (baseline)",
        )
    )
    return out


def table(rows: list[dict[str, object]]) -> str:
    header = ["figure", "value", "median", "baseline", "ratio", "unit"]
    cells = [
        [
            str(r["name"]),
            str(r["value"]),
            str(r.get("median", "")),
            str(r["baseline"]),
            str(r["ratio"]),
            str(r["unit"]),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two rounds")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    rows = run(2 if args.quick else args.rounds)
    if args.json:
        for row in rows:
            print(json.dumps(row))  # noqa: T201 - a bench prints its figures
    else:
        print(table(rows))  # noqa: T201


if __name__ == "__main__":
    main()
