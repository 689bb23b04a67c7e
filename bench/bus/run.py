"""One JetStream hop through seoblog's Bus (publish -> consume handler) against the same hop by
hand with nats-py (publish with ack + pull fetch), measured in the same run (issue 8).

    uv run python bench/bus/run.py                 # 3 interleaved rounds, a table
    uv run python bench/bus/run.py --json          # one JSON object per line
    uv run python bench/bus/run.py --rounds 1 --hops 200 --burst 500

Sequential hops give the latency (p50, p95) through a consumer with 8 slots (the stages) and
one with concurrency 1 (stream order, the gateway's projection); a burst of messages published
at once and handled by a consumer with 8 slots gives the throughput. The Bus signs and verifies
(a key is set) and traces (a TracerProvider without exporter), as the services do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time

import nats
from nats.js.api import ConsumerConfig, StreamConfig
from opentelemetry.sdk.trace import TracerProvider

from seoblog_contracts import JobFailed, JobProgress, Stage, Subjects
from seoblog_runtime import Bus, ServiceSettings


def _settings(url: str, ns: str) -> ServiceSettings:
    return ServiceSettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=url,
        namespace=ns,
        service="bench",
        event_key=secrets.token_hex(32),
    )


async def bus_round(
    url: str, hops: int, burst: int, concurrency: int
) -> tuple[list[float], float, float]:
    ns = f"bb{secrets.token_hex(4)}"
    bus = Bus(_settings(url, ns), tracer_provider=TracerProvider(), stage=Stage.CRAWL)
    arrived = asyncio.Event()
    stamps: list[float] = []
    counted = [0]
    done = asyncio.Event()

    async def handle(event: JobProgress) -> None:
        stamps.append(time.perf_counter())
        arrived.set()

    async def count(event: JobProgress) -> None:
        counted[0] += 1
        if counted[0] == burst:
            done.set()

    bus.consume(
        bus.subjects.of(JobProgress), "bench-hop", JobProgress, handle, concurrency=concurrency
    )
    bus.consume(f"{bus.subjects.root}.job.failed", "bench-burst", JobFailed, count, concurrency=8)
    await bus.start()
    try:
        latencies = []
        for i in range(hops):
            arrived.clear()
            start = time.perf_counter()
            await bus.publish(JobProgress(job_id=f"j{i}", stage=Stage.CRAWL, percent=1))
            await arrived.wait()
            latencies.append((stamps[-1] - start) * 1000)
        events = [
            JobFailed(job_id=f"b{i}", stage=Stage.CRAWL, code="x", message="y")
            for i in range(burst)
        ]
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(bus.publish(e) for e in events))
        await done.wait()
        rate = burst / (time.perf_counter() - start)
        cpu_us = (time.process_time() - cpu) / burst * 1e6
    finally:
        await bus.js.delete_stream(bus.subjects.stream)
        await bus.js.delete_stream(bus.subjects.dlq_stream)
        await bus.stop()
    return latencies, rate, cpu_us


async def bare_round(url: str, hops: int, burst: int) -> tuple[list[float], float, float]:
    ns = f"bb{secrets.token_hex(4)}"
    subjects = Subjects(ns)
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = subjects.stream
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subjects.root}.>"]))
    try:
        body = JobProgress(job_id="j", stage=Stage.CRAWL, percent=1).model_dump_json().encode()

        stamps: list[float] = []
        arrived = asyncio.Event()

        async def run(subject: str, durable: str, want: int, batch: int) -> None:
            sub = await js.pull_subscribe(
                subject, durable, stream=stream, config=ConsumerConfig(ack_wait=30)
            )
            got = 0
            while got < want:
                try:
                    msgs = await sub.fetch(batch, timeout=5)
                except TimeoutError:
                    continue
                for msg in msgs:
                    await msg.ack()
                    stamps.append(time.perf_counter())
                    got += 1
                arrived.set()

        latencies = []
        hop_subject = f"{subjects.root}.hop"
        consumer = asyncio.create_task(run(hop_subject, "hop", hops, 1))
        await asyncio.sleep(0.2)
        for i in range(hops):
            arrived.clear()
            start = time.perf_counter()
            await js.publish(hop_subject, body, headers={"Nats-Msg-Id": f"h{i}"})
            await arrived.wait()
            latencies.append((stamps[-1] - start) * 1000)
        await consumer
        burst_subject = f"{subjects.root}.burst"
        consumer = asyncio.create_task(run(burst_subject, "burst", burst, 8))
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(
            *(
                js.publish(burst_subject, body, headers={"Nats-Msg-Id": f"b{i}"})
                for i in range(burst)
            )
        )
        await consumer
        rate = burst / (time.perf_counter() - start)
        cpu_us = (time.process_time() - cpu) / burst * 1e6
    finally:
        await js.delete_stream(stream)
        await nc.close()
    return latencies, rate, cpu_us


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hops", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {}
    units = {"p50_ms": "ms", "p95_ms": "ms", "msgs_per_s": "msg/s", "cpu_us_per_msg": "µs/msg"}
    for _ in range(args.rounds):  # interleaved, so drift hits both sides alike
        bare_lat, bare_rate, bare_cpu = await bare_round(args.nats_url, args.hops, args.burst)
        bus_lat, bus_rate, bus_cpu = await bus_round(args.nats_url, args.hops, args.burst, 8)
        one_lat, _, _ = await bus_round(args.nats_url, args.hops, 1, 1)
        for name, value, base in (
            ("bus.hop.p50_ms", pct(bus_lat, 0.5), pct(bare_lat, 0.5)),
            ("bus.hop.p95_ms", pct(bus_lat, 0.95), pct(bare_lat, 0.95)),
            ("bus.hop_ordered.p50_ms", pct(one_lat, 0.5), pct(bare_lat, 0.5)),
            ("bus.burst.msgs_per_s", bus_rate, bare_rate),
            # CPU of this process per message (publish with ack + handle): robust under load
            ("bus.burst.cpu_us_per_msg", bus_cpu, bare_cpu),
        ):
            figures.setdefault(name, []).append((value, base))
    rows = []
    for name, samples in figures.items():
        value = statistics.median(v for v, _ in samples)
        base = statistics.median(b for _, b in samples)
        unit = units[name.rsplit(".", 1)[-1]]
        rows.append(
            {
                "name": name,
                "value": round(value, 3),
                "baseline": round(base, 3),
                "ratio": round(value / base, 3) if base else None,
                "unit": unit,
            }
        )
    if args.json:
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
        return
    sys.stdout.write(f"median of {args.rounds} rounds; baseline = the same hop by hand\n")
    sys.stdout.write(f"{'figure':<26}{'bus':>12}{'bare':>12}{'ratio':>8}  unit\n")
    for row in rows:
        sys.stdout.write(
            f"{row['name']:<26}{row['value']:>12}{row['baseline']:>12}{row['ratio']:>8}  "
            f"{row['unit']}\n"
        )


if __name__ == "__main__":
    asyncio.run(main())
