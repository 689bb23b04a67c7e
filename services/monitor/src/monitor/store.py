"""All SQL of the monitor: when each job entered each state, and alert history, and the
figures computed from them, so they hold across restarts and replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seoblog_contracts import JobState
from seoblog_runtime import Store, migrations_of

from .alert_rules import FinishedJobs
from .pipeline import SPANS, TERMINAL_RANK, Transition

Announce = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Recorded:
    """What recording a batch changed: the states that are new, and every state's time of
    the jobs that have one (nothing for a redelivered batch)."""

    new: list[Transition] = field(default_factory=list)
    times: dict[str, dict[JobState, datetime]] = field(default_factory=dict)


@dataclass(frozen=True)
class Latency:
    p50: float | None
    p95: float | None
    count: int


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

    async def record_batch(self, transitions: list[Transition]) -> Recorded:
        """Record job states in one transaction; `transitions` has one per job and state.

        A state keeps its earliest time. The batch's jobs are locked (in one order, so two
        replicas cannot deadlock) so that, of two batches touching a job at once, the second
        sees the first: each latency is then observed exactly once.
        """
        if not transitions:
            return Recorded()
        jobs = sorted({t.job_id for t in transitions})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), hashtext(job_id))"
                " FROM (SELECT job_id FROM unnest($2::text[]) AS j(job_id) ORDER BY job_id) s",
                self.schema,
                jobs,
            )
            # xmax = 0 only for a row this statement inserted: the state is news.
            rows = await conn.fetch(
                "INSERT INTO job_states AS j (job_id, state, rank, at, stage, code)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[],"
                "                      $4::timestamptz[], $5::text[], $6::text[])"
                " ON CONFLICT (job_id, state) DO UPDATE"
                "   SET at = EXCLUDED.at, stage = EXCLUDED.stage, code = EXCLUDED.code"
                "   WHERE EXCLUDED.at < j.at"
                " RETURNING job_id, state, xmax = 0 AS inserted",
                [t.job_id for t in transitions],
                [t.state.value for t in transitions],
                [t.rank for t in transitions],
                [t.at for t in transitions],
                [t.stage for t in transitions],
                [t.code for t in transitions],
            )
            inserted = {(r["job_id"], r["state"]) for r in rows if r["inserted"]}
            new = [t for t in transitions if (t.job_id, t.state.value) in inserted]
            if not new:
                return Recorded()
            states = await conn.fetch(
                "SELECT job_id, state, at FROM job_states WHERE job_id = ANY($1::text[])",
                sorted({t.job_id for t in new}),
            )
        times: dict[str, dict[JobState, datetime]] = {}
        for r in states:
            times.setdefault(r["job_id"], {})[JobState(r["state"])] = r["at"]
        return Recorded(new, times)

    async def job_counts(self) -> dict[str, int]:
        """Jobs by current state: the first terminal state, else the furthest stage reached."""
        rows = await self.pool.fetch(
            "SELECT state, count(*)::int AS n FROM ("
            "  SELECT DISTINCT ON (job_id) job_id, state FROM job_states"
            "  ORDER BY job_id, rank DESC, at, state"
            ") current GROUP BY state"
        )
        return {r["state"]: r["n"] for r in rows}

    async def finished_jobs(self, window_s: float) -> FinishedJobs:
        """Jobs whose first terminal state falls in the last `window_s` seconds."""
        row = await self.pool.fetchrow(
            "SELECT count(*) FILTER (WHERE s.state = 'completed')::int AS completed,"
            "       count(*) FILTER (WHERE s.state = 'failed')::int AS failed"
            " FROM job_states s"
            " WHERE s.rank = $2 AND s.at >= now() - make_interval(secs => $1)"
            "   AND NOT EXISTS (SELECT 1 FROM job_states e WHERE e.job_id = s.job_id"
            "                   AND e.rank = $2 AND (e.at, e.state) < (s.at, s.state))",
            window_s,
            TERMINAL_RANK,
        )
        return FinishedJobs(completed=row["completed"], failed=row["failed"])

    async def latencies(self, window_s: float | None = None) -> dict[str, Latency]:
        """p50, p95 and count of every span (see pipeline.SPANS), optionally for spans that
        ended in the last `window_s` seconds."""
        rows = await self.pool.fetch(
            "SELECT span,"
            "  percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) AS p50,"
            "  percentile_cont(0.95) WITHIN GROUP (ORDER BY secs) AS p95,"
            "  count(*)::int AS n"
            " FROM ("
            "  SELECT d.span, extract(epoch FROM e.at - s.at)::float8 AS secs"
            "  FROM unnest($1::text[], $2::text[], $3::text[]) AS d(span, start_state, end_state)"
            "  JOIN job_states s ON s.state = d.start_state"
            "  JOIN job_states e ON e.job_id = s.job_id AND e.state = d.end_state"
            "  WHERE e.at >= s.at"
            "    AND ($4::float8 IS NULL OR e.at >= now() - make_interval(secs => $4::float8))"
            " ) spans GROUP BY span",
            [span.name for span in SPANS],
            [span.start.value for span in SPANS],
            [span.end.value for span in SPANS],
            window_s,
        )
        found = {r["span"]: Latency(r["p50"], r["p95"], r["n"]) for r in rows}
        return {span.name: found.get(span.name, Latency(None, None, 0)) for span in SPANS}

    async def failures(self, window_s: float | None = None) -> dict[str, int]:
        """Failed jobs by "<stage>:<code>"."""
        rows = await self.pool.fetch(
            "SELECT coalesce(stage, 'unknown') || ':' || coalesce(code, 'unknown') AS key,"
            "       count(*)::int AS n"
            " FROM job_states WHERE state = 'failed'"
            "   AND ($1::float8 IS NULL OR at >= now() - make_interval(secs => $1::float8))"
            " GROUP BY 1 ORDER BY 1",
            window_s,
        )
        return {r["key"]: r["n"] for r in rows}

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
