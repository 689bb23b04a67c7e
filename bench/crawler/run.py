"""Crawler benchmark: fetch throughput against a local server that answers every page after an
injected latency, next to the latency-bound ideal (concurrency / latency); extraction time per
page; peak memory, also while large pages are fetched at once.

The server runs in its own process (so it does not share our GIL) and serves the 121 real
extraction fixtures. Pages are spread over 64 host names that resolve to 127.0.0.1, through the
crawler's real Fetcher: SSRF guard, robots.txt (fetched once per host), per-host slots and
token buckets (set high here: this measures the crawler, not a site's politeness limits).

    uv run python bench/crawler/run.py [--latency-ms 100] [--levels 1,8,32,128]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import ipaddress
import multiprocessing
import os
import resource
import socket
import statistics
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor

from crawler.addresses import AddressPolicy, IPAddress
from crawler.analysis import analyse_page, warm_up_worker
from crawler.extract import ExtractionError
from crawler.fetch import Fetcher, FetchLimits
from crawler.politeness import Politeness, PolitenessRules
from seoblog_runtime import Cache
from seoblog_testing.site import shared_dir

HOSTS = 64
BIG_PAGE_BYTES = 4_900_000


def fixture_pages() -> list[bytes]:
    folder = shared_dir() / "fixtures" / "extraction" / "html"
    return [gzip.decompress(p.read_bytes()) for p in sorted(folder.glob("*.html.gz"))]


def serve(port: int, latency_s: float) -> None:
    """The site: /p/<n> (fixture n, after the latency), /big (one large page), robots.txt."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    pages = fixture_pages()
    big = b"<html><body>" + b"<p>" + b"word " * (BIG_PAGE_BYTES // 5) + b"</p></body></html>"
    html = "text/html; charset=utf-8"

    async def page(request: Request) -> Response:
        await asyncio.sleep(latency_s)
        return Response(pages[int(request.path_params["n"]) % len(pages)], media_type=html)

    async def large(request: Request) -> Response:
        await asyncio.sleep(latency_s)
        return Response(big, media_type=html)

    async def robots(request: Request) -> Response:
        return Response("User-agent: *\nAllow: /\n", media_type="text/plain")

    app = Starlette(
        routes=[Route("/p/{n:int}", page), Route("/big", large), Route("/robots.txt", robots)]
    )
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="error", backlog=4096, timeout_keep_alive=60
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the benchmark server did not start")


async def loopback(host: str, port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")]


def make_fetcher(concurrency: int) -> Fetcher:
    rules = PolitenessRules(host_rate_per_s=10_000, host_burst=10_000, host_concurrency=1_000)
    return Fetcher(
        FetchLimits(attempts=1, timeout_s=30),
        policy=AddressPolicy.allowing(["127.0.0.0/8"]),
        resolver=loopback,
        politeness=Politeness(Cache("bench"), rules),
        per_host_connections=8,
    )


async def crawl(
    port: int, concurrency: int, pages: int, pool: ProcessPoolExecutor | None
) -> tuple[float, float, int]:
    """Fetch `pages` pages with `concurrency` in flight (and extract them in `pool` when given).
    Returns (seconds, client CPU seconds, failures), warm-up (robots.txt, connections) apart."""
    fetcher = make_fetcher(concurrency)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(pages):
        queue.put_nowait(n)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            n = queue.get_nowait()
            try:
                page = await fetcher.fetch(f"http://h{n % HOSTS}.bench.test:{port}/p/{n}")
                if pool is not None:
                    await loop.run_in_executor(  # as the crawler does: bytes in
                        pool, analyse_page, page.body, page.final_url, "default", page.charset
                    )
            except ExtractionError:
                pass  # a fixture without an article still cost its extraction
            except Exception:
                failures += 1

    # Warm up: robots.txt of every host, connections.
    await asyncio.gather(
        *(fetcher.fetch(f"http://h{h}.bench.test:{port}/p/{h}") for h in range(HOSTS))
    )
    started, cpu = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    await fetcher.aclose()
    return elapsed, cpu, failures


async def large_pages(port: int, at_once: int) -> tuple[float, float]:
    """Peak Python heap (MB) while `at_once` pages of ~4.9 MB are fetched together, and the
    seconds it took."""
    fetcher = make_fetcher(at_once)
    tracemalloc.start()
    started = time.perf_counter()
    await asyncio.gather(
        *(fetcher.fetch(f"http://h{i}.bench.test:{port}/big") for i in range(at_once))
    )
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    await fetcher.aclose()
    return peak / 1e6, elapsed


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def extraction_ms() -> tuple[float, float, int]:
    """Mean and p95 milliseconds of the crawler's extraction (+ SimHash) over every fixture."""
    warm_up_worker()  # what each extraction process does as it starts
    times = []
    for html in fixture_pages():
        text = html.decode("utf-8", errors="replace")
        started = time.perf_counter()
        with contextlib.suppress(ExtractionError):
            analyse_page(text, "https://example.com/article")
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.mean(times), times[int(len(times) * 0.95) - 1], len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--levels", default="1,8,32,128")
    parser.add_argument("--pages-per-slot", type=int, default=8, help="pages per concurrency")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    levels = [int(x) for x in args.levels.split(",")]

    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(port, latency), daemon=True
    )
    server.start()
    workers = os.cpu_count() or 1
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    try:
        wait_for_port(port)
        mean_ms, p95_ms, pages = extraction_ms()
        list(pool.map(abs, range(workers)))  # start the extraction processes
        out = [
            f"crawler fetch throughput, {args.latency_ms:g} ms latency per page, {HOSTS} hosts, "
            f"{workers} CPUs",
            "",
            "| concurrency | pages | fetch pages/s | ideal | ratio | client CPU ms/page "
            f"| fetch + extract pages/s ({workers} processes) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for level in levels:
            count = max(level * args.pages_per_slot, 16)
            ideal = level / latency
            secs, cpu, failed = asyncio.run(crawl(port, level, count, None))
            cpu_ms = cpu / count * 1000
            secs_x, _, failed_x = asyncio.run(crawl(port, level, count, pool))
            note = f" ({failed + failed_x} failed)" if failed or failed_x else ""
            out.append(
                f"| {level} | {count} | {count / secs:.1f} | {ideal:.0f} "
                f"| {count / secs / ideal:.2f} | {cpu_ms:.1f} | {count / secs_x:.1f}{note} |"
            )
        heap_mb, big_s = asyncio.run(large_pages(port, 8))
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out += [
            "",
            f"extraction (trafilatura + SimHash), {pages} fixture pages, one process: "
            f"mean {mean_ms:.1f} ms/page, p95 {p95_ms:.1f} ms/page",
            f"memory: 8 pages of {BIG_PAGE_BYTES / 1e6:g} MB fetched at once: peak Python heap "
            f"{heap_mb:.0f} MB ({big_s:.2f} s); peak RSS of the benchmark {peak_rss:.0f} MB",
        ]
        print("\n".join(out), flush=True)  # noqa: T201 - a bench prints its tables
    finally:
        pool.shutdown(cancel_futures=True)
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
