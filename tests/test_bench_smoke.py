"""The performance benchmark (bench/run.py) runs and speaks its JSON-lines format; its
numbers are not checked here (speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"name", "value", "baseline", "ratio", "unit"}


async def test_one_cheap_figure_prints_one_json_object_per_line_and_leaves_no_namespace(
    nats_client,
):
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "bench/run.py", "--quick", "--json", "--only", "bus.hop_p50_ms"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert all(r.keys() >= KEYS for r in rows)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) <= {"bus.hop_p50_ms", "machine.cpu_pressure_pct"}
    assert by_name["bus.hop_p50_ms"]["value"] > 0
    assert by_name["bus.hop_p50_ms"]["unit"] == "ms"
    used = re.findall(r"namespace (\w+)", done.stderr)
    assert used
    streams = [s.config.name for s in await nats_client.jetstream().streams_info()]
    assert not [s for s in streams if s.startswith(tuple(ns.upper() + "_" for ns in used))]


def test_repeated_figures_report_the_median_and_the_ratio_of_each_run():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from perf.figures import Figures, as_json_lines, as_table
    finally:
        sys.path.remove(str(ROOT / "bench"))
    figs = Figures()
    for value, baseline in ((10.0, 100.0), (30.0, 100.0), (20.0, 50.0)):
        figs.add("pipeline.jobs_per_min", value, baseline, "jobs/min")
    figs.add("cached.llm_calls", 0, None, "calls")
    rows = [json.loads(line) for line in as_json_lines(figs.rows()).splitlines()]
    assert rows[0] == {
        "name": "pipeline.jobs_per_min",
        "value": 20.0,
        "baseline": 100.0,
        "ratio": 0.3,  # the median of 0.1, 0.3 and 0.4
        "unit": "jobs/min",
        "min": 10.0,
        "max": 30.0,
        "runs": [10.0, 30.0, 20.0],
    }
    assert rows[1] == {
        "name": "cached.llm_calls",
        "value": 0.0,
        "baseline": None,
        "ratio": None,
        "unit": "calls",
    }
    assert "| pipeline.jobs_per_min | 20 | 100 | 0.3 |" in as_table(figs.rows())
