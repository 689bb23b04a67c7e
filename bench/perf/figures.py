"""Figures and their output: one JSON object per line, or one markdown table for people."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# The figures issue 8 asks for, in table order, with their goals (for the table only).
REQUIRED = (
    "pipeline.jobs_per_min",
    "pipeline.bound_jobs_per_min",
    "pipeline.ratio",
    "pipeline.cpu_s_per_job",
    "cached.jobs_per_s",
    "overhead.p50_ms",
    "gateway.submit.ratio",
    "gateway.submit.cpu_ratio",
    "gateway.status.ratio",
    "rss.max_service_mb",
    "rss.crawler_total_mb",
    "startup.s",
    "first_job.s",
    "extraction.f1",
)
GOALS = {
    "pipeline.ratio": "≥ 0.35",
    "pipeline.cpu_s_per_job": "≤ 0.06",
    "cached.jobs_per_s": "≥ 150",
    "cached.llm_calls": "0",
    "overhead.p50_ms": "≤ 20",
    "gateway.submit.ratio": "≥ 0.7",
    "gateway.submit.cpu_ratio": "≤ 1.5",
    "gateway.status.ratio": "≥ 0.8",
    "rss.max_service_mb": "≤ 150",
    "rss.crawler_total_mb": "≤ 300",
    "startup.s": "≤ 5",
    "first_job.s": "≤ 1",
    "extraction.f1": "≥ 0.97",
}


@dataclass
class Sample:
    value: float | None
    baseline: float | None = None
    unit: str = ""
    note: str = ""


@dataclass
class Figures:
    """Samples per figure name, in first-seen order; several per name when repeated."""

    samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))

    def add(
        self,
        name: str,
        value: float | None,
        baseline: float | None = None,
        unit: str = "",
        note: str = "",
    ) -> None:
        self.samples[name].append(Sample(value, baseline, unit, note))

    def rows(self) -> list[dict[str, Any]]:
        return [summarise(name, samples) for name, samples in self.samples.items()]


def _num(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return float(x)


def _median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def summarise(name: str, samples: list[Sample]) -> dict[str, Any]:
    """value, baseline and ratio are medians over the repetitions; min/max/runs beside them."""
    values = [_num(s.value) for s in samples]
    baselines = [_num(s.baseline) for s in samples]
    ratios = [
        v / b if v is not None and b not in (None, 0) else None
        for v, b in zip(values, baselines, strict=True)
    ]
    clean = [v for v in values if v is not None]
    row: dict[str, Any] = {
        "name": name,
        "value": _round(_median(values)),
        "baseline": _round(_median(baselines)),
        "ratio": _round(_median(ratios)),
        "unit": samples[-1].unit,
    }
    if len(samples) > 1:
        row["min"] = _round(min(clean)) if clean else None
        row["max"] = _round(max(clean)) if clean else None
        row["runs"] = [_round(v) for v in values]
    notes = [s.note for s in samples if s.note]
    if notes:
        row["note"] = notes[-1]
    return row


def _round(x: float | None) -> float | None:
    if x is None:
        return None
    if x == 0 or abs(x) >= 100:
        return round(x, 1)
    return float(f"{x:.4g}")


def as_json_lines(rows: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)


def _cell(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.3g}" if abs(x) < 100 else f"{x:,.0f}"
    return str(x)


def as_table(rows: list[dict[str, Any]], header: str = "") -> str:
    repeated = any("runs" in r for r in rows)
    head = "| figure | value | baseline (same run) | ratio | goal | unit |"
    rule = "|---|---:|---:|---:|---|---|"
    if repeated:
        head += " min | max |"
        rule += "---:|---:|"
    lines = [header, "", head, rule] if header else [head, rule]
    for r in rows:
        line = (
            f"| {r['name']} | {_cell(r['value'])} | {_cell(r['baseline'])} | "
            f"{_cell(r['ratio'])} | {GOALS.get(r['name'], '')} | {r['unit']} |"
        )
        if repeated:
            line += f" {_cell(r.get('min'))} | {_cell(r.get('max'))} |"
        lines.append(line)
    notes = [f"- {r['name']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)
