"""Experiments in the monitor: each experiment job's figures folded from its events (its
variant comes with seo.job.submitted), Prometheus metrics by experiment and variant, and every
EVALUATE_EVERY_S the guardrails (a breach publishes seo.experiment.rolled_back and fires an
alert) and the ramp (a step that held publishes seo.experiment.ramped). The gateway owns the
experiments; it applies both events and announces the result as seo.experiment.changed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from seoblog_contracts import (
    AlertFired,
    Event,
    ExperimentChanged,
    ExperimentRamped,
    ExperimentRolledBack,
    JobCancelled,
    JobFailed,
    JobSubmitted,
    PageCrawled,
    PostGenerated,
    TextTranslated,
    stage_event_id,
    utcnow,
)
from seoblog_experiments import Experiment, JobFigures, Report, breaches, build_report, step_holds
from seoblog_runtime import Bus, Store

from .webhooks import AlertWebhooks

log = logging.getLogger("seoblog.monitor.experiments")

EVALUATE_EVERY_S = 2.0
EXPERIMENT_EVENTS = (ExperimentChanged, ExperimentRolledBack, ExperimentRamped)

_UPSERT_JOB = (
    "INSERT INTO experiment_jobs (experiment_id, job_id, variant, submitted_at)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (experiment_id, job_id) DO UPDATE"
    " SET variant = EXCLUDED.variant,"
    " submitted_at = LEAST(experiment_jobs.submitted_at, EXCLUDED.submitted_at)"
)
_STAGE_AT = {
    PageCrawled: "crawled_at",
    TextTranslated: "translated_at",
}


class ExperimentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["experiment", "variant"]
        self.jobs = Counter(
            "seoblog_experiment_jobs",
            "Finished experiment jobs by outcome (completed, failed, cancelled)",
            [*labels, "outcome"],
            registry=registry,
        )
        self.e2e = Histogram(
            "seoblog_experiment_e2e_seconds",
            "Submission to post, per experiment variant",
            labels,
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.score = Histogram(
            "seoblog_experiment_seo_score",
            "SEO score of the variant's posts",
            labels,
            buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
            registry=registry,
        )
        self.cost = Counter(
            "seoblog_experiment_cost_usd",
            "LLM cost of the variant's completed jobs",
            labels,
            registry=registry,
        )
        self.tokens = Counter(
            "seoblog_experiment_tokens",
            "LLM tokens of the variant's completed jobs",
            labels,
            registry=registry,
        )
        self.share = Gauge(
            "seoblog_experiment_share_percent",
            "Share of matching jobs each variant gets now",
            labels,
            registry=registry,
        )
        self.rollbacks = Counter(
            "seoblog_experiment_rollbacks",
            "Guardrail breaches that rolled an experiment back",
            ["experiment"],
            registry=registry,
        )


class ExperimentWatch:
    def __init__(
        self,
        bus: Bus,
        store: Store,
        registry: CollectorRegistry,
        *,
        every_s: float = EVALUATE_EVERY_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.bus, self.store, self.every_s, self.clock = bus, store, every_s, clock
        self.metrics = ExperimentMetrics(registry)
        self._acted: set[str] = set()  # event ids published: one decision per version
        # Whether any experiment job may be unfinished: without, failures and cancellations
        # (which do not carry the job's variants) cost no query. Set by submits, and by every
        # evaluation round from the table, so it holds across restarts.
        self._open = True
        self._task: asyncio.Task[None] | None = None
        self.webhooks: AlertWebhooks | None = None  # the monitor's alert webhooks, when set

    # -- folding events -----------------------------------------------------------------------

    def _relevant(self, event: Event) -> bool:
        if isinstance(event, ExperimentChanged):
            return True
        if isinstance(event, JobSubmitted | PageCrawled | TextTranslated):
            if event.spec.experiments:
                self._open = True
                return True
            return False
        if isinstance(event, PostGenerated):
            return bool(event.experiments)
        return isinstance(event, JobFailed | JobCancelled) and self._open

    async def observe(self, events: Sequence[Event]) -> None:
        """Fold a batch: definitions, new experiment jobs, stage times and outcomes. A batch
        with nothing of experiments in it costs no query."""
        relevant = [e for e in events if self._relevant(e)]
        if not relevant:
            return
        async with self.store.pool.acquire() as conn, conn.transaction():
            for event in relevant:
                if isinstance(event, ExperimentChanged):
                    await conn.execute(
                        "INSERT INTO experiments (experiment_id, version, status, definition)"
                        " VALUES ($1, $2, $3, $4) ON CONFLICT (experiment_id) DO UPDATE SET"
                        " version = EXCLUDED.version, status = EXCLUDED.status,"
                        " definition = EXCLUDED.definition, updated_at = now()"
                        " WHERE experiments.version <= EXCLUDED.version",
                        event.experiment_id,
                        event.version,
                        event.status,
                        json.dumps(event.definition),
                    )
                elif isinstance(event, JobSubmitted) and event.spec.experiments:
                    for a in event.spec.experiments:
                        await conn.execute(
                            _UPSERT_JOB, a.experiment_id, event.job_id, a.variant, event.occurred_at
                        )
                elif type(event) in _STAGE_AT:
                    column = _STAGE_AT[type(event)]
                    await conn.execute(
                        f"UPDATE experiment_jobs SET {column} = $2"  # noqa: S608 (fixed names)
                        f" WHERE job_id = $1 AND {column} IS NULL",
                        event.job_id,
                        event.occurred_at,
                    )
                elif isinstance(event, PostGenerated | JobFailed | JobCancelled):
                    await self._finish(conn, event)

    async def _finish(self, conn: Any, event: PostGenerated | JobFailed | JobCancelled) -> None:
        if isinstance(event, PostGenerated):
            outcome, code = "completed", None
            score, usage = float(event.seo.score), event.usage
            tokens, cost = usage.prompt_tokens + usage.completion_tokens, usage.cost_usd
            revised: bool | None = event.revised
        else:
            outcome = "failed" if isinstance(event, JobFailed) else "cancelled"
            code = event.code if isinstance(event, JobFailed) else None
            score, tokens, cost, revised = None, None, None, None
        rows = await conn.fetch(
            "UPDATE experiment_jobs SET outcome = $2, failure_code = $3, finished_at = $4,"
            " score = $5, tokens = $6, cost_usd = $7, revised = $8"
            " WHERE job_id = $1 AND outcome IS NULL"
            " RETURNING experiment_id, variant, submitted_at",
            event.job_id,
            outcome,
            code,
            event.occurred_at,
            score,
            tokens,
            cost,
            revised,
        )
        for row in rows:  # first finish only: a redelivery updates nothing and counts nothing
            labels = (row["experiment_id"], row["variant"])
            self.metrics.jobs.labels(*labels, outcome).inc()
            if outcome == "completed":
                assert score is not None
                assert tokens is not None
                assert cost is not None
                self.metrics.score.labels(*labels).observe(score)
                self.metrics.cost.labels(*labels).inc(cost)
                self.metrics.tokens.labels(*labels).inc(tokens)
                if row["submitted_at"] is not None:
                    seconds = (event.occurred_at - row["submitted_at"]).total_seconds()
                    self.metrics.e2e.labels(*labels).observe(max(0.0, seconds))

    # -- reading ----------------------------------------------------------------------------

    async def experiments(self) -> list[Experiment]:
        rows = await self.store.pool.fetch("SELECT definition FROM experiments")
        return [Experiment.model_validate_json(r["definition"]) for r in rows]

    async def figures(
        self, experiment_id: str, since: datetime | None = None
    ) -> list[tuple[JobFigures, datetime | None]]:
        """Finished jobs of the experiment (submitted since `since`: a resumed experiment is
        judged on its new jobs, not on those that got it rolled back)."""
        rows = await self.store.pool.fetch(
            "SELECT * FROM experiment_jobs WHERE experiment_id = $1 AND outcome IS NOT NULL"
            " AND ($2::timestamptz IS NULL OR submitted_at >= $2)",
            experiment_id,
            since,
        )
        return [(figures_of(r), r["finished_at"]) for r in rows]

    # -- evaluating -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="monitor-experiments")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.evaluate()
            except Exception:  # the next round tries again
                log.warning("evaluating experiments failed", exc_info=True)

    async def evaluate(self) -> None:
        """One round over every running experiment: one query while there are none."""
        with suppress_instrumentation():  # an orphan query every round; the sampler drops it
            row = await self.store.pool.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM experiment_jobs WHERE outcome IS NULL) AS open,"
                " coalesce((SELECT array_agg(definition) FROM experiments), '{}') AS definitions"
            )
        self._open = bool(row["open"])
        for experiment in (Experiment.model_validate_json(d) for d in row["definitions"]):
            for v in experiment.variants:
                share = v.share if experiment.status == "running" else 0.0
                if experiment.status == "promoted":
                    share = 100.0 if v.name == experiment.promoted_variant else 0.0
                self.metrics.share.labels(experiment.id, v.name).set(share)
            if experiment.status != "running":
                continue
            rows = await self.figures(experiment.id, experiment.started_at)
            # The statistics take a few hundred ms on thousands of jobs: off the event loop.
            figures = [f for f, _ in rows]
            report = await asyncio.to_thread(
                functools.partial(build_report, experiment, figures, intervals=False)
            )
            if await self._guard(experiment, report, figures):
                continue
            await self._ramp(experiment, report, rows)

    async def _guard(
        self, experiment: Experiment, report: Report, figures: list[JobFigures]
    ) -> bool:
        found = breaches(experiment, report)
        if not found:
            return False
        # Rare: the figures of the rollback get their intervals.
        full = await asyncio.to_thread(build_report, experiment, figures)
        found = breaches(experiment, full) or found
        first = found[0]
        event_id = stage_event_id(experiment.id, "experiment.rolled_back", experiment.version)
        if event_id in self._acted:
            return True
        await self.bus.publish(
            ExperimentRolledBack(
                event_id=event_id,
                experiment_id=experiment.id,
                variant=first.variant,
                reason=first.reason,
                figures={"breaches": [b.figures | {"variant": b.variant} for b in found]},
            )
        )
        alert = AlertFired(
            event_id=stage_event_id(experiment.id, "experiment.alert", experiment.version),
            alert="experiment_rolled_back",
            severity="warning",
            summary=f"experiment {experiment.id} rolled back: {first.reason}",
            value=first.figures.get("variant_value"),
        )
        await self.bus.publish(alert)
        if self.webhooks is not None:
            self.webhooks.send(alert)
        self._acted.add(event_id)
        self.metrics.rollbacks.labels(experiment.id).inc()
        log.warning(
            "experiment guardrail breached; rolled back",
            extra={"experiment": experiment.id, "reason": first.reason},
        )
        return True

    async def _ramp(
        self,
        experiment: Experiment,
        report: Report,
        rows: list[tuple[JobFigures, datetime | None]],
    ) -> None:
        ramp = experiment.ramp
        if ramp is None or not ramp.auto_advance or experiment.step is None:
            return
        if experiment.step + 1 >= len(ramp.steps):
            return
        started = experiment.step_started_at
        variants = {v.name for v in experiment.variants}
        in_step = sum(
            1
            for f, at in rows
            if f.variant in variants and at is not None and (started is None or at >= started)
        )
        if not step_holds(experiment, report, in_step, self.clock()):
            return
        step = experiment.step + 1
        event_id = stage_event_id(experiment.id, f"experiment.ramped.{step}", experiment.version)
        if event_id in self._acted:
            return
        await self.bus.publish(
            ExperimentRamped(
                event_id=event_id,
                experiment_id=experiment.id,
                step=step,
                share=ramp.steps[step],
                figures={"jobs_in_step": in_step, "from_step": experiment.step},
            )
        )
        self._acted.add(event_id)
        log.info("experiment ramped", extra={"experiment": experiment.id, "step": step})


def figures_of(row: Any) -> JobFigures:
    stages: dict[str, float] = {}
    sub, crawled, translated, done = (
        row["submitted_at"],
        row["crawled_at"],
        row["translated_at"],
        row["finished_at"],
    )
    if sub and crawled:
        stages["crawl"] = (crawled - sub).total_seconds()
    if crawled and translated:
        stages["translate"] = (translated - crawled).total_seconds()
    if translated and done and row["outcome"] == "completed":
        stages["generate"] = (done - translated).total_seconds()
    e2e = (done - sub).total_seconds() if sub and done else None
    return JobFigures(
        variant=row["variant"],
        outcome=row["outcome"],
        failure_code=row["failure_code"],
        e2e_s=e2e,
        stages_s=stages,
        score=row["score"],
        tokens=row["tokens"],
        cost_usd=row["cost_usd"],
        revised=row["revised"],
    )
