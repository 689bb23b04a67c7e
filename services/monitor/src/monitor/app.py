"""Composition root of the monitor: parts, the observing consumer, the evaluation loop, the
alert webhooks and the HTTP surface (ops routes, /v1/summary, the live page and its data)."""

from __future__ import annotations

from fastapi import FastAPI

from seoblog_runtime import build_parts

from .dashboard import Dashboard, dashboard_router
from .evaluator import Evaluator
from .experiments import ExperimentWatch
from .handlers import register
from .metrics import MonitorMetrics
from .settings import Settings
from .store import PgMonitorStore
from .summary import summary_router
from .webhooks import AlertWebhooks


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = build_parts(settings, PgMonitorStore)
    metrics = MonitorMetrics(parts.registry)
    experiments = ExperimentWatch(parts.bus, parts.store, parts.registry)
    register(parts, metrics, experiments)
    parts.on_start.append(experiments.start)
    parts.on_stop.append(experiments.stop)
    secret = settings.alert_webhook_secret
    webhooks = AlertWebhooks(
        settings.alert_webhooks,
        secret.get_secret_value() if secret else None,
        allowed_networks=settings.alert_webhook_allowed_networks,
    )
    experiments.webhooks = webhooks  # a rollback's alert goes to the alert webhooks too
    evaluator = Evaluator(settings, parts.bus, parts.store, metrics, webhooks)
    dashboard = Dashboard(settings, parts.store, evaluator)
    parts.on_start += [webhooks.start, evaluator.start, dashboard.start]
    parts.on_stop += [dashboard.stop, evaluator.stop, webhooks.stop]
    app = parts.ops_app("seoblog monitor")
    app.include_router(summary_router(parts.store, evaluator))
    app.include_router(dashboard_router(dashboard))
    app.state.parts = parts
    app.state.evaluator = evaluator
    app.state.experiments = experiments
    app.state.dashboard = dashboard
    return app
