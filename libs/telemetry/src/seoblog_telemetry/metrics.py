"""Prometheus figures every service exports: HTTP requests by route, method and status (a pure
ASGI middleware), and the process and Python runtime collectors."""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"  # the route label of a request no route matched (404s of any path)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BOUNDS = (*(str(b) for b in _BUCKETS), "+Inf")


def register_process_collectors(registry: CollectorRegistry) -> None:
    """process_* (CPU, memory, file descriptors), python_info and python_gc_* on a service's
    own registry, as prometheus_client's default registry has them.

    The `_created` series prometheus_client adds beside every counter and histogram are
    turned off (process-wide): nothing reads them, and they doubled the series scraped."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class HttpMetrics(Collector):
    """The request figures of one app: `seoblog_http_requests_total` and
    `seoblog_http_request_duration_seconds` by method, route template and status.

    Kept as plain numbers, read when Prometheus scrapes: a request costs a dict lookup and
    three additions, no locks (requests and scrapes both run on the event loop)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # (method, route, status) -> [count, sum of seconds, per-bucket counts..., +Inf count]
        self._series: dict[tuple[str, str, int], list[float]] = {}
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "other", route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(_BUCKETS) + 3)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect.bisect_left(_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        labels = ["method", "route", "status"]
        requests = CounterMetricFamily(
            "seoblog_http_requests",
            "HTTP requests answered, by method, route template and status",
            labels=labels,
        )
        duration = HistogramMetricFamily(
            "seoblog_http_request_duration_seconds",
            "HTTP request time until the response ended, by method, route template and status",
            labels=labels,
        )
        for (method, route, status), series in list(self._series.items()):
            values = [method, route, str(status)]
            requests.add_metric(values, series[0])
            cumulative, buckets = 0.0, []
            for bound, count in zip(_BOUNDS, series[2:], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric(values, buckets, series[1])
        yield requests
        yield duration

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap `app` (outermost, so requests refused by other middleware count too)."""
        observe = self.observe
        clock = time.perf_counter

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = clock()
            status = 500  # unless a response starts: an exception before it is a 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                observe(scope["method"], route_of(scope), status, clock() - started)

        return timed


def route_of(scope: Scope) -> str:
    """The template of the route that took the request (`/v1/jobs/{job_id}`), set in the
    scope by Starlette's router; UNMATCHED when none did, so raw paths never become labels."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(scope.get("root_path", "") or "") + template if template else UNMATCHED
