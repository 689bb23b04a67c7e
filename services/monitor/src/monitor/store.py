"""All SQL of the monitor: when each job entered each state (while its events can still
arrive), per-minute rollups of states, outcomes and latency sketches, and alert history; the
figures are read from these, so they hold across restarts and replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seoblog_contracts import JobState
from seoblog_runtime import Store, migrations_of

from .alert_rules import FinishedJobs
from .pipeline import (
    SPANS,
    TERMINAL_RANK,
    CostReport,
    Observation,
    Rollup,
    Transition,
    cost_added,
    observe_new,
    rollup_of,
    sketch_quantile,
)

Observed = tuple[Transition, Observation]

Announce = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Latency:
    p50: float | None
    p95: float | None
    count: int


@dataclass(frozen=True)
class MinuteSeries:
    """Per-minute figures since a moment, for the live page: outcomes by minute, p50/p95 of
    each span by the minute spans ended, and LLM cost and tokens by minute."""

    outcomes: dict[datetime, dict[str, int]] = field(default_factory=dict)
    latency: dict[datetime, dict[str, Latency]] = field(default_factory=dict)
    cost: dict[datetime, tuple[float, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ActiveAlert:
    id: int
    alert: str
    severity: str
    summary: str
    value: float | None
    fired_at: datetime


class PgMonitorStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def record_batch(
        self, transitions: list[Transition], costs: Sequence[CostReport] = ()
    ) -> list[Observed]:
        """Record job states, LLM cost reports and their rollups in one transaction;
        `transitions` has one per job and state. Returns what the states that are new add
        (nothing for a redelivery).

        A state keeps its earliest time. The batch's jobs are locked (in one order, so two
        replicas cannot deadlock) so that, of two batches touching a job at once, the second
        sees the first: each latency is then counted exactly once. Three statements whatever
        the batch holds: the locks; the states and reports with what was known before; the
        rollups.
        """
        if not transitions and not costs:
            return []
        first: dict[tuple[str, str], CostReport] = {}
        for c in costs:
            first.setdefault((c.job_id, c.part), c)
        reports = list(first.values())
        state_jobs = sorted({t.job_id for t in transitions})
        cost_jobs = sorted({c.job_id for c in reports})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), hashtext(job_id))"
                " FROM (SELECT job_id FROM unnest($2::text[]) AS j(job_id) ORDER BY job_id) s",
                self.schema,
                sorted(set(state_jobs) | set(cost_jobs)),
            )
            # The statement's snapshot is taken after the locks: its plain SELECTs see every
            # state and report of these jobs recorded before, never this statement's writes.
            rows = await conn.fetch(
                _RECORD,
                [t.job_id for t in transitions],
                [t.state.value for t in transitions],
                [t.rank for t in transitions],
                [t.at for t in transitions],
                [t.stage for t in transitions],
                [t.code for t in transitions],
                state_jobs,
                [c.job_id for c in reports],
                [c.part for c in reports],
                [c.cost_usd for c in reports],
                [c.tokens for c in reports],
                [c.at for c in reports],
                cost_jobs,
            )
            times: dict[str, dict[JobState, datetime]] = {}
            written: dict[tuple[str, str], tuple[datetime, bool]] = {}
            inserted_costs: set[tuple[str, str]] = set()
            known: dict[tuple[str, str], tuple[float, int]] = {}
            for r in rows:
                kind = r["kind"]
                if kind == "state":
                    times.setdefault(r["job_id"], {})[JobState(r["name"])] = r["at"]
                elif kind == "written":
                    written[(r["job_id"], r["name"])] = (r["at"], r["inserted"])
                elif kind == "cost":
                    inserted_costs.add((r["job_id"], r["name"]))
                else:
                    known[(r["job_id"], r["name"])] = (float(r["cost_usd"]), int(r["tokens"]))
            inserted: set[tuple[str, str]] = set()
            for (job_id, state), (at, is_new) in written.items():  # a new or earlier time
                times.setdefault(job_id, {})[JobState(state)] = at
                if is_new:
                    inserted.add((job_id, state))
            new = [t for t in transitions if (t.job_id, t.state.value) in inserted]
            observed = observe_new(new, times) if new else []
            rollup = rollup_of(observed, times)
            new_reports = [c for c in reports if (c.job_id, c.part) in inserted_costs]
            added = cost_added(new_reports, known) if new_reports else {}
            await _add_rollup(conn, rollup, added)
        return observed

    async def job_counts(self) -> dict[str, int]:
        """Jobs by current state: the first terminal state (from the rollups, so also for
        jobs whose states were pruned), else the furthest stage reached."""
        rows = await self.pool.fetch(
            "SELECT state, count(*)::bigint AS n FROM ("
            "  SELECT DISTINCT ON (job_id) job_id, state FROM job_states j"
            "  WHERE NOT EXISTS (SELECT 1 FROM job_states t"
            "                    WHERE t.job_id = j.job_id AND t.rank = $1)"
            "  ORDER BY job_id, rank DESC, at, state"
            ") current GROUP BY state"
            " UNION ALL SELECT outcome, sum(n)::bigint FROM outcome_minutes GROUP BY outcome",
            TERMINAL_RANK,
        )
        return {r["state"]: int(r["n"]) for r in rows}

    async def finished_jobs(self, window_s: float, now: datetime | None = None) -> FinishedJobs:
        """Jobs whose first terminal state falls in the last `window_s` seconds before `now`
        (whole minutes: the minute the window starts in counts in full)."""
        row = await self.pool.fetchrow(
            "SELECT coalesce(sum(n) FILTER (WHERE outcome = 'completed'), 0)::bigint AS completed,"
            "       coalesce(sum(n) FILTER (WHERE outcome = 'failed'), 0)::bigint AS failed"
            " FROM outcome_minutes"
            " WHERE minute >= date_trunc('minute',"
            "                            coalesce($2, now()) - make_interval(secs => $1::float8))",
            window_s,
            now,
        )
        return FinishedJobs(completed=int(row["completed"]), failed=int(row["failed"]))

    async def latencies(
        self, window_s: float | None = None, now: datetime | None = None
    ) -> dict[str, Latency]:
        """p50, p95 and count of every span (see pipeline.SPANS), optionally for spans that
        ended in the last `window_s` seconds before `now` (whole minutes), from the sketches."""
        rows = await self.pool.fetch(
            "SELECT span, bucket, sum(n)::bigint AS n FROM span_minutes"
            " WHERE $1::float8 IS NULL"
            "    OR (minute >= date_trunc('minute',"
            "                             coalesce($2, now()) - make_interval(secs => $1::float8)))"
            " GROUP BY span, bucket",
            window_s,
            now,
        )
        sketches: dict[str, dict[int, int]] = {}
        for r in rows:
            sketches.setdefault(r["span"], {})[r["bucket"]] = int(r["n"])
        found = {}
        for span, buckets in sketches.items():
            found[span] = Latency(
                sketch_quantile(buckets, 0.5), sketch_quantile(buckets, 0.95), sum(buckets.values())
            )
        return {span.name: found.get(span.name, Latency(None, None, 0)) for span in SPANS}

    async def failures(self, window_s: float | None = None) -> dict[str, int]:
        """Failed jobs by "<stage>:<code>" (whole minutes of the window)."""
        rows = await self.pool.fetch(
            "SELECT coalesce(nullif(stage, ''), 'unknown') || ':'"
            "       || coalesce(nullif(code, ''), 'unknown') AS key, sum(n)::bigint AS n"
            " FROM state_minutes WHERE state = 'failed'"
            "   AND ($1::float8 IS NULL"
            "        OR minute >= date_trunc('minute', now() - make_interval(secs => $1::float8)))"
            " GROUP BY 1 ORDER BY 1",
            window_s,
        )
        return {r["key"]: int(r["n"]) for r in rows}

    async def stuck_jobs(self, after_s: float, now: datetime | None = None) -> list[str]:
        """Unfinished jobs whose latest state was entered more than `after_s` before `now`
        (the oldest first, at most 100)."""
        rows = await self.pool.fetch(
            "SELECT job_id FROM job_states GROUP BY job_id"
            " HAVING max(rank) < $3"
            "    AND max(at) < coalesce($2, now()) - make_interval(secs => $1::float8)"
            " ORDER BY max(at), job_id LIMIT 100",
            after_s,
            now,
            TERMINAL_RANK,
        )
        return [r["job_id"] for r in rows]

    async def llm_cost(self, window_s: float, now: datetime | None = None) -> float:
        """LLM spend reported in the last `window_s` seconds before `now` (whole minutes)."""
        value = await self.pool.fetchval(
            "SELECT coalesce(sum(cost_usd), 0)::float8 FROM cost_minutes"
            " WHERE minute >= date_trunc('minute',"
            "                            coalesce($2, now()) - make_interval(secs => $1::float8))",
            window_s,
            now,
        )
        return float(value)

    async def minute_series(self, since: datetime) -> MinuteSeries:
        """Outcomes, span quantiles and LLM cost of every minute from `since` on."""
        series = MinuteSeries()
        async with self.pool.acquire() as conn:
            for r in await conn.fetch(
                "SELECT minute, outcome, n FROM outcome_minutes WHERE minute >= $1", since
            ):
                series.outcomes.setdefault(r["minute"], {})[r["outcome"]] = int(r["n"])
            sketches: dict[tuple[datetime, str], dict[int, int]] = {}
            for r in await conn.fetch(
                "SELECT minute, span, bucket, n FROM span_minutes WHERE minute >= $1", since
            ):
                sketches.setdefault((r["minute"], r["span"]), {})[r["bucket"]] = int(r["n"])
            for r in await conn.fetch(
                "SELECT minute, cost_usd, tokens FROM cost_minutes WHERE minute >= $1", since
            ):
                series.cost[r["minute"]] = (float(r["cost_usd"]), int(r["tokens"]))
        for (minute, span), buckets in sketches.items():
            series.latency.setdefault(minute, {})[span] = Latency(
                sketch_quantile(buckets, 0.5), sketch_quantile(buckets, 0.95), sum(buckets.values())
            )
        return series

    async def prune_job_states(self, older_than_s: float) -> int:
        """Forget the states of jobs that finished longer ago than the stream keeps events
        (none of theirs can arrive any more); their figures stay in the rollups."""
        status = await self.pool.execute(
            "DELETE FROM job_states WHERE job_id IN ("
            "  SELECT job_id FROM job_states"
            "  WHERE rank = $2 AND at < now() - make_interval(secs => $1))",
            older_than_s,
            TERMINAL_RANK,
        )
        await self.pool.execute(
            "DELETE FROM job_costs WHERE at < now() - make_interval(secs => $1)", older_than_s
        )
        return int(status.split()[-1])

    async def active_alerts(self) -> list[ActiveAlert]:
        rows = await self.pool.fetch(
            "SELECT id, alert, severity, summary, value, fired_at FROM alerts"
            " WHERE resolved_at IS NULL ORDER BY fired_at"
        )
        return [ActiveAlert(**dict(r)) for r in rows]

    async def open_alert(
        self, alert: str, severity: str, summary: str, value: float | None, announce: Announce
    ) -> int | None:
        """Open `alert` unless it is open already, and announce it in the same transaction:
        of several replicas, exactly one announces, and a failed announcement opens nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            alert_id: int | None = await conn.fetchval(
                "INSERT INTO alerts (alert, severity, summary, value) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (alert) WHERE resolved_at IS NULL DO NOTHING RETURNING id",
                alert,
                severity,
                summary,
                value,
            )
            if alert_id is not None:
                await announce(alert_id)
        return alert_id

    async def resolve_alert(self, alert: str, announce: Announce) -> int | None:
        """Close the open `alert`, announcing it in the same transaction (see open_alert)."""
        async with self.pool.acquire() as conn, conn.transaction():
            alert_id: int | None = await conn.fetchval(
                "UPDATE alerts SET resolved_at = now()"
                " WHERE alert = $1 AND resolved_at IS NULL RETURNING id",
                alert,
            )
            if alert_id is not None:
                await announce(alert_id)
        return alert_id

    async def alert_history(self, alert: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, alert, severity, summary, value, fired_at, resolved_at FROM alerts"
            " WHERE alert = $1 ORDER BY fired_at",
            alert,
        )
        return [dict(r) for r in rows]


_RECORD = """
WITH w AS (
    INSERT INTO job_states AS j (job_id, state, rank, at, stage, code)
    SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::timestamptz[], $5::text[],
                         $6::text[])
    ON CONFLICT (job_id, state) DO UPDATE
      SET at = EXCLUDED.at, stage = EXCLUDED.stage, code = EXCLUDED.code
      WHERE EXCLUDED.at < j.at
    -- xmax = 0 only for a row this statement inserted: the state is news.
    RETURNING job_id, state, at, xmax = 0 AS inserted
), c AS (
    INSERT INTO job_costs (job_id, part, cost_usd, tokens, at)
    SELECT * FROM unnest($8::text[], $9::text[], $10::float8[], $11::bigint[],
                         $12::timestamptz[])
    ON CONFLICT (job_id, part) DO NOTHING
    RETURNING job_id, part
)
SELECT 'state' AS kind, job_id, state AS name, at, NULL::bool AS inserted,
       NULL::float8 AS cost_usd, NULL::bigint AS tokens
  FROM job_states WHERE job_id = ANY($7::text[])
UNION ALL SELECT 'written', job_id, state, at, inserted, NULL, NULL FROM w
UNION ALL SELECT 'cost', job_id, part, NULL, NULL, NULL, NULL FROM c
UNION ALL SELECT 'known', job_id, part, NULL, NULL, cost_usd, tokens
  FROM job_costs WHERE job_id = ANY($13::text[])
"""

# Keys go in sorted order, so replicas adding to the same minute's rows lock them in one order
# and cannot deadlock. Empty arrays add nothing.
_ADD_ROLLUP = """
WITH s AS (
    INSERT INTO state_minutes AS m (minute, state, stage, code, n)
    SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bigint[])
    ON CONFLICT (minute, state, stage, code) DO UPDATE SET n = m.n + EXCLUDED.n
), o AS (
    INSERT INTO outcome_minutes AS m (minute, outcome, n)
    SELECT * FROM unnest($6::timestamptz[], $7::text[], $8::bigint[])
    ON CONFLICT (minute, outcome) DO UPDATE SET n = m.n + EXCLUDED.n
), p AS (
    INSERT INTO span_minutes AS m (minute, span, bucket, n)
    SELECT * FROM unnest($9::timestamptz[], $10::text[], $11::int[], $12::bigint[])
    ON CONFLICT (minute, span, bucket) DO UPDATE SET n = m.n + EXCLUDED.n
)
INSERT INTO cost_minutes AS m (minute, cost_usd, tokens)
SELECT * FROM unnest($13::timestamptz[], $14::float8[], $15::bigint[])
ON CONFLICT (minute) DO UPDATE
  SET cost_usd = m.cost_usd + EXCLUDED.cost_usd, tokens = m.tokens + EXCLUDED.tokens
"""


def _columns(counts: Mapping[Any, float], width: int) -> list[list[Any]]:
    """Sorted keys of `counts` as `width` columns, then their counts."""
    keys = sorted(counts)
    columns: list[list[Any]] = [list(c) for c in zip(*keys, strict=True)] if keys else []
    return [*(columns or [[] for _ in range(width)]), [counts[k] for k in keys]]


async def _add_rollup(
    conn: Any, rollup: Rollup, cost: Mapping[tuple[datetime, str], float]
) -> None:
    """Add a batch's counts and LLM cost to the rollup rows, in one statement (none when the
    batch adds nothing)."""
    if not (rollup.states or rollup.outcomes or rollup.spans or cost):
        return
    minutes = sorted({minute for minute, _ in cost})
    await conn.execute(
        _ADD_ROLLUP,
        *_columns(rollup.states, 4),
        *_columns(rollup.outcomes, 2),
        *_columns(rollup.spans, 3),
        minutes,
        [cost[(m, "cost_usd")] for m in minutes],
        [round(cost[(m, "tokens")]) for m in minutes],
    )
