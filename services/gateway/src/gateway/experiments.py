"""Experiments in the gateway: the store (table `experiments`), the in-process list of active
experiments every submit assigns from (refreshed from the table every REFRESH_S on every
replica, at once on the replica that made a change), the report read from the jobs read model,
and the consumer that applies the monitor's decisions (seo.experiment.rolled_back, .ramped).
Every change is announced as seo.experiment.changed, so the monitor knows what to watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from seoblog_contracts import (
    ExperimentChanged,
    ExperimentRamped,
    ExperimentRolledBack,
    JobSpec,
    stage_event_id,
    utcnow,
)
from seoblog_experiments import (
    Experiment,
    ExperimentDefinition,
    JobFigures,
    Report,
    assign,
    build_report,
)
from seoblog_experiments.models import ramp_shares
from seoblog_runtime import Parts

from .store import PgJobStore

log = logging.getLogger("gateway.experiments")

REFRESH_S = 1.0
ANNOUNCE_EVERY_S = 60.0
Outcome = Annotated[
    ExperimentChanged | ExperimentRolledBack | ExperimentRamped, Field(discriminator="type")
]

_FIGURES = """
SELECT j.state, j.created_at, j.updated_at, j.error->>'code' AS code,
       e->>'variant' AS variant,
       h.crawling, h.translating, h.generating, h.ended,
       (p.event->'seo'->>'score')::float8 AS score,
       (p.event->'usage'->>'prompt_tokens')::int + (p.event->'usage'->>'completion_tokens')::int
           AS tokens,
       (p.event->'usage'->>'cost_usd')::float8 AS cost,
       (p.event->>'revised')::boolean AS revised
FROM jobs j
CROSS JOIN LATERAL jsonb_array_elements(j.spec->'experiments') e
LEFT JOIN posts p ON p.job_id = j.job_id
LEFT JOIN LATERAL (
    SELECT min(at) FILTER (WHERE state = 'crawling') AS crawling,
           min(at) FILTER (WHERE state = 'translating') AS translating,
           min(at) FILTER (WHERE state = 'generating') AS generating,
           min(at) FILTER (WHERE state IN ('completed', 'failed', 'cancelled')) AS ended
    FROM job_history WHERE job_id = j.job_id
) h ON true
WHERE j.spec->'experiments' @> $1::jsonb AND e->>'experiment_id' = $2
  AND j.cached_from IS NULL AND j.state IN ('completed', 'failed', 'cancelled')
"""


class ExperimentExists(Exception):
    pass


class ExperimentConflict(Exception):
    """The change does not apply to the experiment as it is (say, promoting a rolled-back one)."""


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


def figures_of(row: Any) -> JobFigures:
    """One finished job as the report counts it, from the jobs read model."""
    created, ended = row["created_at"], row["ended"] or row["updated_at"]
    stages = {
        "crawl": _seconds(row["translating"], created),
        "translate": _seconds(row["generating"], row["translating"]),
        "generate": _seconds(ended, row["generating"]) if row["state"] == "completed" else None,
    }
    return JobFigures(
        variant=row["variant"],
        outcome=row["state"],
        failure_code=row["code"],
        e2e_s=_seconds(ended, created),
        stages_s={k: v for k, v in stages.items() if v is not None},
        score=row["score"],
        tokens=row["tokens"],
        cost_usd=row["cost"],
        revised=row["revised"],
    )


class Experiments:
    def __init__(self, parts: Parts[PgJobStore], clock: Callable[[], datetime] = utcnow) -> None:
        self.parts, self.clock = parts, clock
        self.active: list[Experiment] = []  # running and promoted, oldest first
        self._task: asyncio.Task[None] | None = None
        self._announced_at = 0.0

    # -- the hot path -----------------------------------------------------------------------

    def assign(self, job_id: str, spec: JobSpec) -> JobSpec:
        """The spec with the job's variants, from the in-process list (no I/O)."""
        if not self.active:
            return spec
        found = assign(
            self.active, job_id, priority=spec.priority, target_language=spec.target_language
        )
        return spec.model_copy(update={"experiments": found}) if found else spec

    # -- refreshing -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="gateway-experiments")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
                if loop.time() - self._announced_at > ANNOUNCE_EVERY_S:
                    # Again now and then, so a monitor that missed a change (or started
                    # afresh) learns it; same event ids within the stream's duplicate window.
                    self._announced_at = loop.time()
                    for experiment in await self.all():
                        if experiment.status in ("running", "paused"):  # ended ones: once
                            await self._announce(experiment)
            except Exception:  # the next round tries again; submits use the last list
                log.warning("refreshing experiments failed", exc_info=True)

    async def refresh(self) -> None:
        rows = await self.parts.store.pool.fetch(
            "SELECT definition FROM experiments WHERE status IN ('running', 'promoted')"
            " ORDER BY created_at, experiment_id"
        )
        self.active = [Experiment.model_validate_json(r["definition"]) for r in rows]

    # -- the store --------------------------------------------------------------------------

    async def all(self) -> list[Experiment]:
        rows = await self.parts.store.pool.fetch(
            "SELECT definition FROM experiments ORDER BY created_at DESC, experiment_id"
        )
        return [Experiment.model_validate_json(r["definition"]) for r in rows]

    async def get(self, experiment_id: str) -> Experiment | None:
        raw = await self.parts.store.pool.fetchval(
            "SELECT definition FROM experiments WHERE experiment_id = $1", experiment_id
        )
        return None if raw is None else Experiment.model_validate_json(raw)

    async def create(self, definition: ExperimentDefinition) -> Experiment:
        now = self.clock()
        experiment = Experiment.model_validate(
            definition.model_dump()
            | {
                "status": "running",
                "version": 1,
                "created_at": now,
                "updated_at": now,
                "started_at": now,
            }
        )
        if experiment.ramp is not None:
            experiment = _at_step(experiment, 0, now)
        inserted = await self.parts.store.pool.fetchval(
            "INSERT INTO experiments (experiment_id, status, version, definition, created_at,"
            " updated_at) VALUES ($1, $2, 1, $3, $4, $4) ON CONFLICT DO NOTHING RETURNING 1",
            experiment.id,
            experiment.status,
            experiment.model_dump_json(),
            now,
        )
        if inserted is None:
            raise ExperimentExists(experiment.id)
        await self._changed(experiment)
        return experiment

    async def change(
        self, experiment_id: str, edit: Callable[[Experiment, datetime], Experiment | None]
    ) -> Experiment | None:
        """Apply `edit` to the stored experiment under a row lock; None if there is none.
        `edit` returns the new experiment, or None for no change (no new version)."""
        async with self.parts.store.pool.acquire() as conn, conn.transaction():
            raw = await conn.fetchval(
                "SELECT definition FROM experiments WHERE experiment_id = $1 FOR UPDATE",
                experiment_id,
            )
            if raw is None:
                return None
            current = Experiment.model_validate_json(raw)
            now = self.clock()
            new = edit(current, now)
            if new is None:
                return current
            new = new.model_copy(update={"version": current.version + 1, "updated_at": now})
            new = Experiment.model_validate(new.model_dump())  # validated as a whole again
            await conn.execute(
                "UPDATE experiments SET status = $2, version = $3, definition = $4,"
                " updated_at = $5 WHERE experiment_id = $1",
                experiment_id,
                new.status,
                new.version,
                new.model_dump_json(),
                now,
            )
        await self._changed(new)
        return new

    async def _changed(self, experiment: Experiment) -> None:
        await self.refresh()
        await self._announce(experiment)
        log.info(
            "experiment changed",
            extra={"experiment": experiment.id, "status": experiment.status},
        )

    async def _announce(self, experiment: Experiment) -> None:
        event = ExperimentChanged(
            event_id=stage_event_id(experiment.id, "experiment.changed", experiment.version),
            experiment_id=experiment.id,
            status=experiment.status,
            version=experiment.version,
            definition=experiment.model_dump(mode="json"),
        )
        try:
            await self.parts.bus.publish(event)
        except Exception:  # the refresh loop announces it again within ANNOUNCE_EVERY_S
            log.warning("experiment change not announced", exc_info=True)

    # -- the report -------------------------------------------------------------------------

    async def report(self, experiment: Experiment) -> Report:
        rows = await self.parts.store.pool.fetch(
            _FIGURES, json.dumps([{"experiment_id": experiment.id}]), experiment.id
        )
        figures = [figures_of(r) for r in rows]
        return await asyncio.to_thread(build_report, experiment, figures)

    # -- the monitor's decisions ------------------------------------------------------------

    async def apply(
        self, event: ExperimentChanged | ExperimentRolledBack | ExperimentRamped
    ) -> None:
        if isinstance(event, ExperimentRolledBack):
            await self.change(event.experiment_id, lambda e, _: rolled_back(e, event.reason))
        elif isinstance(event, ExperimentRamped):
            await self.change(event.experiment_id, lambda e, now: ramped(e, event.step, now))

    def register(self) -> None:
        bus = self.parts.bus
        bus.consume(
            f"{bus.subjects.root}.experiment.>",
            "gateway-experiment_outcome",
            Outcome,
            self.apply,
            concurrency=1,
        )


# -- changes (pure: experiment in, experiment out; None means nothing to do) ------------------


def _at_step(experiment: Experiment, step: int, now: datetime) -> Experiment:
    shares = ramp_shares(experiment, step)
    variants = [
        v.model_copy(update={"share": s}) for v, s in zip(experiment.variants, shares, strict=True)
    ]
    return experiment.model_copy(
        update={"variants": variants, "step": step, "step_started_at": now}
    )


def rolled_back(experiment: Experiment, reason: str) -> Experiment | None:
    if experiment.status not in ("running", "paused"):
        return None
    return experiment.model_copy(update={"status": "rolled_back", "reason": reason})


def ramped(experiment: Experiment, step: int, now: datetime) -> Experiment | None:
    """Move to `step` when it is the next one (a repeated or stale decision changes nothing);
    a step of 100 % with one variant promotes it."""
    ramp = experiment.ramp
    if experiment.status != "running" or ramp is None or experiment.step != step - 1:
        return None
    if step >= len(ramp.steps):
        return None
    moved = _at_step(experiment, step, now)
    if ramp.steps[step] >= 100 and len(experiment.variants) == 1:
        return promoted(moved, experiment.variants[0].name, "ramp reached 100 %")
    return moved


def promoted(experiment: Experiment, variant: str, reason: str) -> Experiment:
    if experiment.variant(variant) is None:
        raise ExperimentConflict(f"The experiment has no variant {variant!r}.")
    if experiment.status == "rolled_back":
        raise ExperimentConflict("A rolled-back experiment cannot be promoted; resume it first.")
    return experiment.model_copy(
        update={"status": "promoted", "promoted_variant": variant, "reason": reason}
    )


def paused(experiment: Experiment, reason: str) -> Experiment | None:
    if experiment.status != "running":
        raise ExperimentConflict(
            f"Only a running experiment can be paused (it is {experiment.status})."
        )
    return experiment.model_copy(update={"status": "paused", "reason": reason})


def resumed(experiment: Experiment, now: datetime) -> Experiment | None:
    if experiment.status == "running":
        return None
    if experiment.status == "promoted":
        raise ExperimentConflict("A promoted experiment is finished; create a new one.")
    again = experiment.model_copy(update={"status": "running", "reason": "", "started_at": now})
    if again.ramp is not None and again.step is not None:
        again = _at_step(again, 0, now)  # a rolled-back or paused ramp starts over
    return again


def with_shares(experiment: Experiment, shares: dict[str, float]) -> Experiment:
    unknown = set(shares) - {v.name for v in experiment.variants}
    if unknown:
        raise ExperimentConflict(f"No such variants: {', '.join(sorted(unknown))}.")
    if experiment.status == "promoted":
        raise ExperimentConflict("A promoted experiment is finished; create a new one.")
    variants = [
        v.model_copy(update={"share": shares.get(v.name, v.share)}) for v in experiment.variants
    ]
    if sum(v.share for v in variants) > 100:
        raise ExperimentConflict("The variants' shares add up to more than 100 %.")
    # Shares set by hand stop the ramp: it no longer decides them.
    return experiment.model_copy(update={"variants": variants, "step": None})
