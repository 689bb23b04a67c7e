"""GET /v1/summary: the pipeline at a glance, computed from the store (right across restarts
and replicas) plus live consumer lag from JetStream."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel

from seoblog_contracts import JobState

from .evaluator import Evaluator
from .store import PgMonitorStore

log = logging.getLogger("seoblog.monitor.summary")


class LatencyFigures(BaseModel):
    p50: float | None
    p95: float | None
    count: int


class AlertView(BaseModel):
    alert: str
    severity: str
    summary: str
    value: float | None
    fired_at: datetime


class ConsumerView(BaseModel):
    num_pending: int
    num_ack_pending: int


class Summary(BaseModel):
    jobs: dict[str, int]
    latency_s: dict[str, LatencyFigures]
    failures: dict[str, int]
    alerts: list[AlertView]
    consumers: dict[str, ConsumerView]


def summary_router(store: PgMonitorStore, evaluator: Evaluator) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["monitor"])

    @router.get("/summary", summary="Jobs, stage latency, failures, active alerts, consumer lag")
    async def summary(
        window_s: float | None = Query(
            None, gt=0, description="latency and failures of the last window_s seconds only"
        ),
    ) -> Summary:
        counts = await store.job_counts()
        evaluator.metrics.set_jobs(counts)
        try:
            lag = await evaluator.consumer_lag()
        except Exception:  # NATS away: the store's figures are still worth serving
            log.warning("reading consumer lag failed", exc_info=True)
            lag = {}
        return Summary(
            jobs={state.value: counts.get(state.value, 0) for state in JobState},
            latency_s={
                span: LatencyFigures(p50=f.p50, p95=f.p95, count=f.count)
                for span, f in (await store.latencies(window_s)).items()
            },
            failures=await store.failures(window_s),
            alerts=[
                AlertView(
                    alert=a.alert,
                    severity=a.severity,
                    summary=a.summary,
                    value=a.value,
                    fired_at=a.fired_at,
                )
                for a in await store.active_alerts()
            ],
            consumers={
                name: ConsumerView(num_pending=c.num_pending, num_ack_pending=c.num_ack_pending)
                for name, c in lag.items()
            },
        )

    return router
