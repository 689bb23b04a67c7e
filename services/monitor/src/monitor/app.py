"""Composition root of the monitor: parts, the observing consumer, the evaluation loop and
the HTTP surface (ops routes plus /v1/summary)."""

from __future__ import annotations

from fastapi import FastAPI

from seoblog_runtime import build_parts

from .evaluator import Evaluator
from .handlers import register
from .metrics import MonitorMetrics
from .settings import Settings
from .store import PgMonitorStore
from .summary import summary_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgMonitorStore)
    metrics = MonitorMetrics(parts.registry)
    register(parts, metrics)
    evaluator = Evaluator(settings, parts.bus, parts.store, metrics)
    parts.on_start.append(evaluator.start)
    parts.on_stop.append(evaluator.stop)
    app = parts.ops_app("seoblog monitor")
    app.include_router(summary_router(parts.store, evaluator))
    app.state.parts = parts
    app.state.evaluator = evaluator
    return app
