"""CPU per job and RSS of the translator or the generator as a real process, alone, fed its
input events straight on NATS, against the same service at an earlier git revision, in turns.

    uv run python bench/stages/service.py translator --before HEAD~3 [--jobs 121] [--reps 3]
    uv run python bench/stages/service.py generator --before HEAD~3 [--json]

Each turn starts `python -m <service>` in a fresh namespace (fresh streams, schemas and cache;
this machine's NATS, PostgreSQL and Redis; the fake LLM at 0 ms in this process), warms it up
with 10 jobs, then publishes one signed input event per fixture article (`page.crawled` for the
translator, target "de", so every segment goes to the LLM; `text.translated` for the generator,
its own keywords per job, so nothing is cached) and waits for every job's output event. CPU =
user + system time of the service process (/proc) from the first publish to the last output,
÷ jobs; RSS after the load. `--before REV` runs the service's package as it was at REV
(`git archive` of services/<service>/src on PYTHONPATH; the libraries stay the current ones);
turns alternate REV and the work tree, so machine drift spreads over both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from perf.procs import Proc, cpu_seconds, rss_mb  # noqa: E402
from perf.revision import tree_at  # noqa: E402
from perf.system import drop_everything, service_env  # noqa: E402

from seoblog_contracts import (  # noqa: E402
    SIGNATURE_HEADER,
    Event,
    JobSpec,
    PageCrawled,
    Subjects,
    TextTranslated,
    new_event_id,
    sign,
)
from seoblog_devstack.infra import Infra, ensure_infra, free_port  # noqa: E402
from seoblog_testing import unique_name  # noqa: E402
from seoblog_testing.fake_llm import FakeLLM  # noqa: E402

FIXTURES = ROOT.parent / "shared/fixtures/extraction"
WARM = 10
PY_SPY = shutil.which("py-spy") or str(Path.home() / ".local/bin/py-spy")
OUTPUT = {"translator": "text.translated", "generator": "post.generated"}


def articles() -> list[tuple[str, str]]:
    truth = json.loads((FIXTURES / "ground-truth.json").read_text())
    out = []
    for value in truth.values():
        text = str(value.get("articleBody") or "")
        if text:
            out.append((text.split(".")[0][:80].strip() or "Article", text))
    return out


def input_event(
    service: str, n: int, title: str, text: str, round_id: str, target: str = "de"
) -> Event:
    url = f"https://example.com/{round_id}/{n}"
    words = [w for w in text.split() if w.isalpha() and len(w) > 4]
    keyword = words[n % len(words)] if words else "science"
    job = new_event_id()
    if service == "translator":
        return PageCrawled(
            job_id=job,
            spec=JobSpec(url=url, keywords=[keyword], target_language=target),
            url=url,
            final_url=url,
            title=title,
            text=text,
            language="en",
            content_hash=new_event_id(),
        )
    return TextTranslated(
        event_id=new_event_id(),
        job_id=job,
        spec=JobSpec(url=url, keywords=[keyword, f"{keyword} {round_id}"], target_language="en"),
        source_url=url,
        title=title,
        text=text,
        source_language="en",
        target_language="en",
        translated=False,
        content_hash=new_event_id(),
    )


def package_at(rev: str, service: str, into: Path) -> Path:
    """services/<service>/src as it was at `rev`, unpacked under `into`; the PYTHONPATH entry."""
    return tree_at(rev, f"services/{service}/src", into)


async def _turn(
    service: str,
    infra: Infra,
    llm: FakeLLM,
    pythonpath: str | None,
    logs: Path,
    profile: Path | None = None,
) -> dict[str, float]:
    ns = unique_name()
    env = service_env(infra, ns, llm.base_url, llm.api_key, "WARNING", 4)
    port = free_port()
    env |= {f"{service.upper()}_PORT": str(port), "OTEL_SERVICE_NAME": service}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    key = env["SEOBLOG_EVENT_KEY"].encode()
    subjects = Subjects(ns)
    proc = Proc(service, [sys.executable, "-m", service], env, logs / f"{service}-{ns}.log")
    proc.start()
    nc = await nats.connect(infra.nats_url)
    try:
        await _ready(proc, port)
        seen: set[str] = set()
        got = asyncio.Event()
        want = [0]

        async def on_out(msg: Any) -> None:
            seen.add(str(json.loads(msg.data)["job_id"]))
            if len(seen) >= want[0]:
                got.set()

        await nc.subscribe(f"{subjects.root}.{OUTPUT[service]}", cb=on_out)
        js = nc.jetstream()
        texts = articles()

        async def feed(events: list[Event]) -> None:
            want[0] = len(seen) + len(events)
            got.clear()
            for event in events:
                body = event.__pydantic_serializer__.to_json(event)
                headers = {"Nats-Msg-Id": event.event_id, SIGNATURE_HEADER: sign(key, body)}
                await js.publish(subjects.of(event), body, stream=subjects.stream, headers=headers)
            await asyncio.wait_for(got.wait(), timeout=600)

        rid = secrets.token_hex(3)
        # The translator warms up on a target of its own, so the measured jobs are not cached.
        warm = [
            input_event(service, n, t, x, f"w{rid}", target="fr")
            for n, (t, x) in enumerate(texts[:WARM])
        ]
        await feed(warm)
        warm_rss = rss_mb(proc.pid)
        events = [input_event(service, n, t, x, rid) for n, (t, x) in enumerate(texts)]
        spy = None
        if profile is not None:  # py-spy over the measured window (it costs the process CPU)
            profile.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(  # noqa: S603, ASYNC220 - py-spy on our own child, at once
                [
                    PY_SPY,
                    "record",
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(profile),
                    "--pid",
                    str(proc.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1)
        began_cpu, began = cpu_seconds(proc.pid), time.perf_counter()
        await feed(events)
        cpu, wall = cpu_seconds(proc.pid) - began_cpu, time.perf_counter() - began
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        await asyncio.sleep(0.5)
        return {
            "cpu_ms": 1000 * cpu / len(events),
            "wall_s": wall,
            "rss_mb": rss_mb(proc.pid),
            "rss_after_warm_up_mb": warm_rss,
            **memory_mb(proc.pid),
        }
    finally:
        await nc.close()
        proc.stop()
        await drop_everything(infra, ns)


def memory_mb(pid: int) -> dict[str, float]:
    """Anonymous (heap) and file-backed (code, mapped libraries) resident memory."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile"):
            found[f"{name[3:].lower()}_mb"] = round(int(value.split()[0]) / 1024, 1)
    return found


async def _ready(proc: Proc, port: int, timeout_s: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{proc.name} not ready:\n{proc.tail()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=sorted(OUTPUT))
    parser.add_argument("--before", help="git revision to compare with (in turns)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile", type=Path, help="folder: py-spy collapsed stacks of each turn (skews CPU)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seoblog-stage-svc-") as folder:
        tmp = Path(folder)
        variants: dict[str, str | None] = {"now": None}
        if args.before:
            variants = {
                f"before ({args.before})": str(package_at(args.before, args.service, tmp / "old")),
                "now": None,
            }
        infra = ensure_infra(tmp / "infra")
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        with infra, FakeLLM() as llm:
            for rep in range(args.reps):
                for name, path in variants.items():
                    where = None
                    if args.profile:
                        label = "now" if path is None else "before"
                        where = args.profile / f"{args.service}-{label}-{rep + 1}.txt"
                    figures = asyncio.run(
                        _turn(args.service, infra, llm, path, tmp / "logs", where)
                    )
                    results[name].append(figures)
                    print(  # noqa: T201 - a bench reports as it goes
                        f"rep {rep + 1} {name}: " + json.dumps(figures), file=sys.stderr
                    )
    for name, runs in results.items():
        row = {
            "name": f"stages.{args.service}.process_cpu_ms_per_job",
            "variant": name,
            "min": round(min(r["cpu_ms"] for r in runs), 2),
            "median": round(statistics.median(r["cpu_ms"] for r in runs), 2),
            "rss_mb_max": round(max(r["rss_mb"] for r in runs), 1),
            "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
            "runs": len(runs),
        }
        print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))  # noqa: T201


if __name__ == "__main__":
    main()
