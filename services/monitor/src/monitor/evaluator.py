"""The background evaluation: every `evaluate_every_s`, refresh the gauges read from the store
and from JetStream, scrape the configured services, evaluate every alert rule (alert_rules)
and announce each change once (seo.alert.fired / seo.alert.resolved and the alert webhooks),
and forget finished jobs' states."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from seoblog_contracts import AlertFired, AlertResolved, stage_event_id, utcnow
from seoblog_runtime import Bus

from .alert_rules import (
    AlertAction,
    Check,
    act,
    breaker_check,
    cost_check,
    dlq_check,
    down_check,
    failure_rate_check,
    lag_check,
    latency_check,
    less_held,
    stuck_check,
)
from .handlers import CONSUMER, HELD_BACK_MAX
from .metrics import MonitorMetrics
from .scrape import Scraper
from .settings import Settings
from .store import PgMonitorStore
from .webhooks import AlertWebhooks

log = logging.getLogger("seoblog.monitor.evaluator")
# The monitor's own consumer leaves up to its flush window's events pending (handlers.FLUSH_S).
HELD_BACK = {CONSUMER: HELD_BACK_MAX}


@dataclass(frozen=True)
class ConsumerLag:
    num_pending: int
    num_ack_pending: int


@dataclass(frozen=True)
class Sample:
    """What one round saw of JetStream: every consumer's backlog and the DLQ's last sequence."""

    at: datetime
    pending: dict[str, int]
    dlq_seq: int | None


class Evaluator:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        store: PgMonitorStore,
        metrics: MonitorMetrics,
        webhooks: AlertWebhooks | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings, self.bus, self.store, self.metrics = settings, bus, store, metrics
        self.webhooks = webhooks or AlertWebhooks([], None)
        self.clock = clock  # the one fake the tests use: windows and history read it
        self.scraper = Scraper(
            {n: str(u) for n, u in settings.services.items()}, settings.scrape_timeout_s
        )
        self.samples: deque[Sample] = deque(maxlen=20_000)
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.settings.services:
            self._http = httpx.AsyncClient(follow_redirects=False)
        self._task = asyncio.create_task(self._loop(), name="monitor-evaluate")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.evaluate_every_s)
            await self.evaluate()

    async def evaluate(self) -> None:
        """One round; a failing step is logged and retried next round, never fatal."""
        now = self.clock()
        try:
            self.metrics.set_jobs(await self.store.job_counts())
            await self.store.prune_job_states(self.settings.stream_max_age_s)
        except Exception:
            log.warning("reading the store failed", exc_info=True)
        if self._http is not None:
            await self.scraper.scrape(self._http, now)
        if not await self.bus.ping():  # not connected yet, or NATS is away
            return
        try:
            await self.sample(now)
            for check in await self.checks(now):
                await self.apply(check)
        except Exception:
            log.warning("evaluating against NATS failed", exc_info=True)

    async def consumer_lag(self) -> dict[str, ConsumerLag]:
        """Every durable consumer on the stream, with its backlog; also sets the gauges."""
        infos = await self.bus.js.consumers_info(self.bus.subjects.stream)
        lag = {i.name: ConsumerLag(i.num_pending or 0, i.num_ack_pending or 0) for i in infos}
        self.metrics.set_consumers({n: (c.num_pending, c.num_ack_pending) for n, c in lag.items()})
        return lag

    async def sample(self, now: datetime) -> Sample:
        lag = await self.consumer_lag()
        dlq_seq: int | None = None
        with contextlib.suppress(Exception):  # no DLQ stream yet: nothing dead-lettered
            info = await self.bus.js.stream_info(self.bus.subjects.dlq_stream)
            dlq_seq = int(info.state.last_seq or 0)
        found = Sample(now, {n: c.num_pending for n, c in lag.items()}, dlq_seq)
        self.samples.append(found)
        keep = max(self.settings.lag_window_s, self.settings.dlq_window_s)
        keep = max(keep, self.settings.dashboard_minutes * 60) + 2 * self.settings.evaluate_every_s
        while self.samples and (now - self.samples[0].at).total_seconds() > keep:
            self.samples.popleft()
        return found

    def sample_before(self, now: datetime, window_s: float) -> Sample | None:
        """The newest sample taken at least `window_s` before `now` (None: no history yet)."""
        cutoff = now - timedelta(seconds=window_s)
        found = None
        for s in self.samples:
            if s.at > cutoff:
                break
            found = s
        return found

    async def checks(self, now: datetime) -> list[Check]:
        """Every rule's reading this round (the scrape-based ones only with MONITOR_SERVICES)."""
        s = self.settings
        jobs = await self.store.finished_jobs(s.alert_window_s, now)
        self.metrics.failure_rate.set(jobs.failure_rate)
        e2e = (await self.store.latencies(s.e2e_window_s, now))["end_to_end"]
        latest = self.samples[-1]
        lag_before = self.sample_before(now, s.lag_window_s)
        dlq_before = self.sample_before(now, s.dlq_window_s)
        found = [
            failure_rate_check(
                jobs,
                threshold=s.failure_rate_threshold,
                min_jobs=s.alert_min_jobs,
                window_s=s.alert_window_s,
            ),
            stuck_check(await self.store.stuck_jobs(s.stuck_after_s, now), after_s=s.stuck_after_s),
            lag_check(
                less_held(latest.pending, HELD_BACK),
                less_held(lag_before.pending, HELD_BACK) if lag_before else None,
                threshold=s.lag_threshold,
                window_s=s.lag_window_s,
            ),
            dlq_check(
                latest.dlq_seq or 0,
                (dlq_before.dlq_seq or 0) if dlq_before else None,
                window_s=s.dlq_window_s,
            ),
            cost_check(
                await self.store.llm_cost(s.llm_cost_window_s, now),
                budget_usd=s.llm_cost_budget_usd,
                window_s=s.llm_cost_window_s,
            ),
            latency_check(
                e2e.p95,
                e2e.count,
                objective_s=s.e2e_p95_objective_s,
                min_jobs=s.e2e_min_jobs,
                window_s=s.e2e_window_s,
            ),
        ]
        if s.services:
            found.append(breaker_check(self.scraper.breakers()))
            found.append(
                down_check(
                    self.scraper.down(now, s.service_down_after_s), after_s=s.service_down_after_s
                )
            )
        return found

    async def apply(self, check: Check) -> AlertAction:
        """Fire or resolve `check`'s alert; another replica may do it first, and the store
        lets exactly one announce each change."""
        active = any(a.alert == check.alert for a in await self.store.active_alerts())
        action = act(check, active=active)
        announced: list[AlertFired | AlertResolved] = []

        async def announce(event: AlertFired | AlertResolved) -> None:
            await self._announce(event)
            announced.append(event)

        if action is AlertAction.FIRE:
            await self.store.open_alert(
                check.alert,
                check.severity,
                check.summary,
                check.value,
                lambda alert_id: announce(self._fired(alert_id, check)),
            )
        elif action is AlertAction.RESOLVE:
            await self.store.resolve_alert(
                check.alert, lambda alert_id: announce(self._resolved(alert_id, check))
            )
        for event in announced:  # committed: the receivers hear of it once
            self.webhooks.send(event)
        firing = action is AlertAction.FIRE or (active and action is AlertAction.KEEP)
        self.metrics.alert_active.labels(check.alert).set(1 if firing else 0)
        return action

    async def _announce(self, event: AlertFired | AlertResolved) -> None:
        if isinstance(event, AlertFired):
            log.warning("alert fired", extra={"alert": event.alert, "summary": event.summary})
        else:
            log.info("alert resolved", extra={"alert": event.alert, "summary": event.summary})
        await self.bus.publish(event)

    @staticmethod
    def _fired(alert_id: int, check: Check) -> AlertFired:
        return AlertFired(
            # One id per alert occurrence: a retried publish is dropped as a duplicate.
            event_id=stage_event_id(f"alert:{check.alert}:{alert_id}", "fired"),
            alert=check.alert,
            severity=check.severity,
            summary=check.summary,
            value=check.value,
        )

    @staticmethod
    def _resolved(alert_id: int, check: Check) -> AlertResolved:
        return AlertResolved(
            event_id=stage_event_id(f"alert:{check.alert}:{alert_id}", "resolved"),
            alert=check.alert,
            summary=check.summary,
        )
