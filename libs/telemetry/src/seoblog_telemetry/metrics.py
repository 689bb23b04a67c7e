"""Prometheus figures every service exports: HTTP requests by route, method and status (a pure
ASGI middleware), and the process and Python runtime collectors."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"  # the route label of a request no route matched (404s of any path)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def register_process_collectors(registry: CollectorRegistry) -> None:
    """process_* (CPU, memory, file descriptors), python_info and python_gc_* on a service's
    own registry, as prometheus_client's default registry has them.

    The `_created` series prometheus_client adds beside every counter and histogram are
    turned off (process-wide): nothing reads them, and they doubled the series scraped."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class HttpMetrics:
    """The request figures of one app: `seoblog_http_requests_total` and
    `seoblog_http_request_duration_seconds` by method, route template and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "seoblog_http_requests",
            "HTTP requests answered, by method, route template and status",
            labels,
            registry=registry,
        )
        self.duration = Histogram(
            "seoblog_http_request_duration_seconds",
            "HTTP request time until the response ended, by method, route template and status",
            labels,
            buckets=_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            label = (method if method in _METHODS else "other", route, str(status))
            children = (self.requests.labels(*label), self.duration.labels(*label))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

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
