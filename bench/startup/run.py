"""Start-up benchmark: `seoblog up` until all five /readyz answer 200, then the first job
through the offline path (no LLM) against a fixture page, next to the second job (warm).

Baseline, in the same run: `python -c "import <service>.app"` with bytecode compiled (into a
private PYTHONPYCACHEPREFIX, so the shared virtualenv is not touched), all five at once (as
`seoblog up` starts them, on the same cores); each service alone is shown too.
Each figure is the min and median of --reps runs; the bench's own namespace is dropped after.

    uv run python bench/startup/run.py [--reps 3] [--embedded] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from seoblog_devstack.infra import Infra, free_port
from seoblog_testing.plugin import drop_namespace
from seoblog_testing.site import FixtureSite

SERVICES = ("crawler", "translator", "generator", "monitor", "gateway")
UP_TIMEOUT = 120.0
JOB_TIMEOUT = 60.0
MOVED_LINE = re.compile(r"^port (\d+) is taken; (\w+) uses (\d+)")
NATS_LINE = re.compile(r"(?:found|started embedded) NATS with JetStream at (\S+)")


def import_seconds(service: str, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", f"import {service}.app"], env=env, check=True
    )
    return time.perf_counter() - began


def import_baseline(reps: int) -> tuple[float, dict[str, float]]:
    """Wall time of the five `import <service>.app` at once with compiled bytecode, and the
    fastest of each alone."""
    cache = tempfile.mkdtemp(prefix="seoblog-pyc-")
    env = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for service in SERVICES:
        import_seconds(service, env)  # writes the bytecode
    began = time.perf_counter()
    running = [
        subprocess.Popen([sys.executable, "-c", f"import {s}.app"], env=env)  # noqa: S603
        for s in SERVICES
    ]
    for process in running:
        process.wait()
    together = time.perf_counter() - began
    return together, {s: min(import_seconds(s, env) for _ in range(reps)) for s in SERVICES}


class Up:
    """`seoblog up` in a subprocess; its console lines are read on a thread."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.gateway_port = free_port()
        self.began = time.perf_counter()
        command = [sys.executable, "-m", "seoblog_devstack", "up", "--data-dir", str(data_dir)]
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter
            [*command, "--port", str(self.gateway_port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ports = {"gateway": self.gateway_port} | {
            "crawler": 8001,
            "translator": 8002,
            "generator": 8003,
            "monitor": 8004,
        }
        self.nats_url: str | None = None
        self.database_url: str | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            text = line.removeprefix("devstack   | ")
            if moved := MOVED_LINE.match(text):
                self.ports[moved[2]] = int(moved[3])
            if found := NATS_LINE.search(text):
                self.nats_url = found[1]

    def wait_ready(self, client: httpx.Client) -> float:
        """Seconds from the start of `seoblog up` until every /readyz answered 200."""
        pending = set(SERVICES)
        deadline = self.began + UP_TIMEOUT
        while pending:
            if time.perf_counter() > deadline or self.process.poll() is not None:
                raise RuntimeError("seoblog up did not get ready:\n" + "\n".join(self.lines[-40:]))
            for name in list(pending):
                try:
                    url = f"http://127.0.0.1:{self.ports[name]}/readyz"
                    if client.get(url, timeout=0.5).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.02)
        return time.perf_counter() - self.began

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_job(client: httpx.Client, gateway_port: int, url: str) -> float:
    """Seconds from POST /v1/jobs until the job is completed."""
    base = f"http://127.0.0.1:{gateway_port}"
    began = time.perf_counter()
    body = {"url": url, "keywords": ["guide"], "target_language": "en", "length": 300}
    response = client.post(f"{base}/v1/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = began + JOB_TIMEOUT
    while time.perf_counter() < deadline:
        job = client.get(f"{base}/v1/jobs/{job_id}").json()
        if job["state"] == "completed":
            return time.perf_counter() - began
        if job["state"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id} {job['state']}: {job.get('error')}")
        time.sleep(0.01)
    raise RuntimeError(f"job {job_id} not completed within {JOB_TIMEOUT:.0f}s")


def stage_latencies(client: httpx.Client, monitor_port: int) -> dict[str, float]:
    """The monitor's figures for the one job done so far: where the first job spent its time."""
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        body = client.get(f"http://127.0.0.1:{monitor_port}/v1/summary").json()
        spans = body["latency_s"]
        if spans["end_to_end"]["count"] >= 1:
            return {name: figures["p50"] for name, figures in spans.items()}
        time.sleep(0.05)
    return {}


def one_run(
    site: FixtureSite, articles: list[str], embedded: bool
) -> tuple[float, float, float, dict[str, float]]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        SEOBLOG_NAMESPACE=namespace,
        CRAWLER_ALLOWED_NETWORKS='["127.0.0.0/8"]',
        OTEL_TRACES_EXPORTER="none",
        PYTHONUNBUFFERED="1",
    )
    for name in ("LLM_BASE_URL", "LLM_API_KEY", "SEOBLOG_SERVICES"):
        env.pop(name, None)
    if embedded:
        env["SEOBLOG_EMBEDDED"] = "1"
    with tempfile.TemporaryDirectory(prefix="seoblog-up-") as data_dir:
        up = Up(Path(data_dir), env)
        try:
            with httpx.Client(timeout=5.0) as client:
                ready = up.wait_ready(client)
                first = run_job(client, up.gateway_port, site.article_url(articles[0]))
                stages = stage_latencies(client, up.ports["monitor"])
                second = run_job(client, up.gateway_port, site.article_url(articles[1]))
        finally:
            up.stop()
            if not embedded:
                infra = Infra(
                    nats_url=up.nats_url or env.get("NATS_URL", "nats://127.0.0.1:4222"),
                    database_url=env.get(
                        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
                    ),
                    redis_url=None,
                )
                asyncio.run(drop_namespace(infra, namespace))
    return ready, first, second, stages


def figure(name: str, values: list[float], baseline: float, unit: str) -> dict[str, object]:
    value = min(values)
    return {
        "name": name,
        "value": round(value, 3),
        "median": round(statistics.median(values), 3),
        "baseline": round(baseline, 3),
        "ratio": round(value / baseline, 2) if baseline else None,
        "unit": unit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--embedded", action="store_true", help="SEOBLOG_EMBEDDED=1")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()

    readies, firsts, seconds, imports, togethers = [], [], [], [], []
    stages: dict[str, list[float]] = {}
    with FixtureSite() as site:
        ids = site.article_ids()
        for rep in range(args.reps):
            # Interleaved with the runs, so both see the same load on the machine.
            together, alone = import_baseline(1)
            togethers.append(together)
            imports.append(alone)
            pair = [ids[(2 * rep) % len(ids)], ids[(2 * rep + 1) % len(ids)]]
            ready, first, second, spans = one_run(site, pair, args.embedded)
            for span, seconds_ in spans.items():
                stages.setdefault(span, []).append(seconds_)
            readies.append(ready)
            firsts.append(first)
            seconds.append(second)
    per_service = {s: min(run[s] for run in imports) for s in SERVICES}
    rows = [
        figure("startup.s", readies, min(togethers), "s"),
        figure("first_job.s", firsts, min(seconds), "s"),
    ]
    rows += [figure(f"first_job.{span}.s", v, min(v), "s") for span, v in stages.items()]
    rows += [figure(f"startup.import.{s}.s", [t], t, "s") for s, t in per_service.items()]
    if args.json:
        for row in rows:
            print(json.dumps(row))  # noqa: T201 - the bench's output
        return
    print(f"{'figure':<28}{'min':>8}{'median':>8}{'baseline':>10}{'ratio':>7}")  # noqa: T201
    for row in rows:
        print(  # noqa: T201
            f"{row['name']:<28}{row['value']:>8}{row['median']:>8}{row['baseline']:>10}"
            f"{row['ratio']!s:>7}"
        )
    print(  # noqa: T201
        "startup.s baseline: the five `import <service>.app` at once, bytecode compiled;"
        " first_job.s baseline: the second job (services warm); first_job.<span>.s: the"
        " monitor's figures for the first job"
    )


if __name__ == "__main__":
    main()
