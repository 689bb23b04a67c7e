"""The background evaluation: every `evaluate_every_s`, refresh the gauges read from the store
and from JetStream, fire or resolve the failure rate alert, and forget finished jobs' states."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from seoblog_contracts import AlertFired, AlertResolved, stage_event_id
from seoblog_runtime import Bus

from .alert_rules import HIGH_FAILURE_RATE, AlertAction, FinishedJobs, decide, describe
from .metrics import MonitorMetrics
from .settings import Settings
from .store import PgMonitorStore

log = logging.getLogger("seoblog.monitor.evaluator")


@dataclass(frozen=True)
class ConsumerLag:
    num_pending: int
    num_ack_pending: int


class Evaluator:
    def __init__(
        self, settings: Settings, bus: Bus, store: PgMonitorStore, metrics: MonitorMetrics
    ) -> None:
        self.settings, self.bus, self.store, self.metrics = settings, bus, store, metrics
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="monitor-evaluate")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.evaluate_every_s)
            await self.evaluate()

    async def evaluate(self) -> None:
        """One round; a failing step is logged and retried next round, never fatal."""
        try:
            self.metrics.set_jobs(await self.store.job_counts())
            await self.store.prune_job_states(self.settings.stream_max_age_s)
        except Exception:
            log.warning("reading the store failed", exc_info=True)
        if not await self.bus.ping():  # not connected yet, or NATS is away
            return
        try:
            await self.consumer_lag()
            await self.check_failure_rate()
        except Exception:
            log.warning("evaluating against NATS failed", exc_info=True)

    async def consumer_lag(self) -> dict[str, ConsumerLag]:
        """Every durable consumer on the stream, with its backlog; also sets the gauges."""
        infos = await self.bus.js.consumers_info(self.bus.subjects.stream)
        lag = {i.name: ConsumerLag(i.num_pending or 0, i.num_ack_pending or 0) for i in infos}
        self.metrics.set_consumers({n: (c.num_pending, c.num_ack_pending) for n, c in lag.items()})
        return lag

    async def check_failure_rate(self) -> AlertAction:
        s = self.settings
        jobs = await self.store.finished_jobs(s.alert_window_s)
        self.metrics.failure_rate.set(jobs.failure_rate)
        active = any(a.alert == HIGH_FAILURE_RATE for a in await self.store.active_alerts())
        action = decide(
            jobs, active=active, threshold=s.failure_rate_threshold, min_jobs=s.alert_min_jobs
        )
        # Another replica may open or close the alert first; the store lets one announce it.
        if action is AlertAction.FIRE:
            await self.store.open_alert(
                HIGH_FAILURE_RATE,
                "critical",
                describe(jobs, s.alert_window_s),
                jobs.failure_rate,
                lambda alert_id: self._fired(alert_id, jobs),
            )
        elif action is AlertAction.RESOLVE:
            await self.store.resolve_alert(
                HIGH_FAILURE_RATE, lambda alert_id: self._resolved(alert_id, jobs)
            )
        firing = action is AlertAction.FIRE or (active and action is AlertAction.KEEP)
        self.metrics.alert_active.labels(HIGH_FAILURE_RATE).set(1 if firing else 0)
        return action

    async def _fired(self, alert_id: int, jobs: FinishedJobs) -> None:
        summary = describe(jobs, self.settings.alert_window_s)
        log.warning("alert fired", extra={"alert": HIGH_FAILURE_RATE, "summary": summary})
        await self.bus.publish(
            AlertFired(
                # One id per alert occurrence: a retried publish is dropped as a duplicate.
                event_id=stage_event_id(f"alert:{HIGH_FAILURE_RATE}:{alert_id}", "fired"),
                alert=HIGH_FAILURE_RATE,
                severity="critical",
                summary=summary,
                value=jobs.failure_rate,
            )
        )

    async def _resolved(self, alert_id: int, jobs: FinishedJobs) -> None:
        summary = describe(jobs, self.settings.alert_window_s)
        log.info("alert resolved", extra={"alert": HIGH_FAILURE_RATE, "summary": summary})
        await self.bus.publish(
            AlertResolved(
                event_id=stage_event_id(f"alert:{HIGH_FAILURE_RATE}:{alert_id}", "resolved"),
                alert=HIGH_FAILURE_RATE,
                summary=summary,
            )
        )
