"""The live page: GET / (and /dashboard) serves three static files and the vendored chart
library (static/, no CDN, strict CSP); GET /v1/dashboard is one snapshot of the figures the
charts draw, GET /v1/dashboard/stream pushes it over server-sent events. One snapshot is built
at most every `dashboard_push_s` and shared by every viewer, so viewers add no queries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from seoblog_contracts import JobState
from seoblog_runtime.signals import on_stop_signal

from .evaluator import Evaluator
from .pipeline import SPANS, minute_of
from .settings import Settings
from .store import Latency, PgMonitorStore
from .summary import AlertView

log = logging.getLogger("seoblog.monitor.dashboard")

STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "chart.umd.min.js": "text/javascript; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
OUTCOMES = (JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value)


class Quantiles(BaseModel):
    p50: list[float | None]
    p95: list[float | None]


class Lag(BaseModel):
    at: list[datetime] = Field(description="when each sample was taken (every evaluation)")
    pending: dict[str, list[int | None]] = Field(
        description="messages not yet delivered, per durable consumer, per sample"
    )


class Cost(BaseModel):
    usd: list[float] = Field(description="LLM spend reported per minute")
    tokens: list[int] = Field(description="prompt + completion tokens per minute")
    window_usd: float = Field(description="spend in the budget window (llm_cost_window_s)")
    window_s: float
    budget_usd: float


class Snapshot(BaseModel):
    """What the live page draws: per-minute series over the last `dashboard_minutes`."""

    generated_at: datetime
    minutes: list[datetime] = Field(description="the start of each minute, oldest first")
    throughput: dict[str, list[int]] = Field(
        description="jobs finishing per minute by outcome (completed, failed, cancelled)"
    )
    latency_s: dict[str, Quantiles] = Field(
        description="p50/p95 per minute of each stage span (queue, crawl, translate, "
        "generate, end_to_end), by the minute spans ended; null where none ended"
    )
    failures: dict[str, int] = Field(description='failed jobs in the period by "stage:code"')
    lag: Lag
    cost: Cost
    jobs: dict[str, int] = Field(description="jobs per state now")
    alerts: list[AlertView] = Field(description="alerts firing now")


class Dashboard:
    def __init__(self, settings: Settings, store: PgMonitorStore, evaluator: Evaluator) -> None:
        self.settings, self.store, self.evaluator = settings, store, evaluator
        self._latest: tuple[float, Snapshot] | None = None
        self._lock = asyncio.Lock()
        self.closing = asyncio.Event()
        self._restore: Callable[[], None] = lambda: None

    async def start(self) -> None:
        self.closing.clear()
        self._restore = on_stop_signal(self.closing.set)

    async def stop(self) -> None:
        self.closing.set()
        self._restore()

    async def snapshot(self) -> Snapshot:
        """The current snapshot, built again when the last one is `dashboard_push_s` old."""
        async with self._lock:
            if self._latest and time.monotonic() - self._latest[0] < self.settings.dashboard_push_s:
                return self._latest[1]
            found = await self._build()
            self._latest = (time.monotonic(), found)
            return found

    async def _build(self) -> Snapshot:
        s = self.settings
        now = self.evaluator.clock()
        last = minute_of(now)
        minutes = [last - timedelta(minutes=i) for i in range(s.dashboard_minutes - 1, -1, -1)]
        series = await self.store.minute_series(minutes[0])
        counts = await self.store.job_counts()
        period_s = s.dashboard_minutes * 60
        try:
            live = {n: c.num_pending for n, c in (await self.evaluator.consumer_lag()).items()}
        except Exception:  # NATS away: the store's figures are still worth drawing
            log.warning("reading consumer lag failed", exc_info=True)
            live = {}
        history = [x for x in self.evaluator.samples if x.at >= minutes[0]]
        names = sorted(set(live).union(*(x.pending for x in history)))
        lag = Lag(
            at=[x.at for x in history] + [now],
            pending={n: [x.pending.get(n) for x in history] + [live.get(n)] for n in names},
        )
        empty: dict[str, int] = {}
        return Snapshot(
            generated_at=now,
            minutes=minutes,
            throughput={
                o: [series.outcomes.get(m, empty).get(o, 0) for m in minutes] for o in OUTCOMES
            },
            latency_s={
                span.name: Quantiles(
                    p50=[_at(series.latency, m, span.name, 50) for m in minutes],
                    p95=[_at(series.latency, m, span.name, 95) for m in minutes],
                )
                for span in SPANS
            },
            failures=await self.store.failures(period_s),
            lag=lag,
            cost=Cost(
                usd=[round(series.cost.get(m, (0.0, 0))[0], 6) for m in minutes],
                tokens=[series.cost.get(m, (0.0, 0))[1] for m in minutes],
                window_usd=round(await self.store.llm_cost(s.llm_cost_window_s, now), 6),
                window_s=s.llm_cost_window_s,
                budget_usd=s.llm_cost_budget_usd,
            ),
            jobs={state.value: counts.get(state.value, 0) for state in JobState},
            alerts=[
                AlertView(
                    alert=a.alert,
                    severity=a.severity,
                    summary=a.summary,
                    value=a.value,
                    fired_at=a.fired_at,
                )
                for a in await self.store.active_alerts()
            ],
        )


def _at(
    latency: dict[datetime, dict[str, Latency]], minute: datetime, span: str, q: int
) -> float | None:
    figures = latency.get(minute, {}).get(span)
    if figures is None:
        return None
    value = figures.p50 if q == 50 else figures.p95
    return None if value is None else round(value, 4)


@cache
def _file(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def dashboard_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    @router.get("/dashboard", include_in_schema=False)
    async def page() -> Response:
        return Response(
            _file("dashboard.html"), media_type="text/html; charset=utf-8", headers=_HEADERS
        )

    @router.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media_type = _ASSETS.get(name)
        if media_type is None:
            return Response(status_code=404, headers=_HEADERS)
        return Response(_file(name), media_type=media_type, headers=_HEADERS)

    @router.get(
        "/v1/dashboard",
        tags=["monitor"],
        summary="What the live page draws: throughput, stage latency, failures, lag, cost, alerts",
    )
    async def snapshot() -> Snapshot:
        return await dashboard.snapshot()

    @router.get(
        "/v1/dashboard/stream",
        tags=["monitor"],
        summary="The live page's snapshot as server-sent events",
        description="`text/event-stream`: an `event: snapshot` whose `data` is the JSON of GET "
        "/v1/dashboard, at once and then every MONITOR_DASHBOARD_PUSH_S (2 s).",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _events(dashboard, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _events(dashboard: Dashboard, request: Request) -> AsyncIterator[str]:
    yield "retry: 3000\n\n"
    while not dashboard.closing.is_set() and not await request.is_disconnected():
        try:
            found = await dashboard.snapshot()
        except Exception:  # the store is away: keep the stream, the page keeps the last one
            log.warning("building the dashboard failed", exc_info=True)
            yield ": store unavailable\n\n"
        else:
            yield f"event: snapshot\ndata: {found.model_dump_json()}\n\n"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dashboard.closing.wait(), dashboard.settings.dashboard_push_s)
