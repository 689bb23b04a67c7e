"""All SQL of the gateway: jobs, their state history and the posts read model."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from seoblog_contracts import Event, JobFailed, JobProgress, JobSpec, JobState, PostGenerated
from seoblog_runtime import Store, migrations_of

from .projection import advance, state_of


class PgJobStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    async def create_job(
        self, job_id: str, spec: JobSpec, event_id: str, at: datetime, trace_id: str | None
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO jobs (job_id, spec, state, trace_id, created_at, updated_at)"
                " VALUES ($1, $2, 'queued', $3, $4, $4)",
                job_id,
                spec.model_dump_json(),
                trace_id,
                at,
            )
            await conn.execute(
                "INSERT INTO job_history (event_id, job_id, state, at) VALUES ($1, $2, $3, $4)",
                event_id,
                job_id,
                JobState.QUEUED.value,
                at,
            )

    async def apply(self, event: Event) -> bool:
        """Project one event onto its job; True if anything changed. Idempotent."""
        announced = state_of(event)
        if announced is None:
            return False
        async with self.pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                "SELECT state FROM jobs WHERE job_id = $1 FOR UPDATE", event.job_id
            )
            if current is None:
                return False  # not one of ours (or not yet visible); nothing to project
            new_state = advance(JobState(current), announced)
            changed = False
            if new_state is not None:
                inserted = await conn.fetchval(
                    "INSERT INTO job_history (event_id, job_id, state, at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING event_id",
                    event.event_id,
                    event.job_id,
                    new_state.value,
                    event.occurred_at,
                )
                if inserted is not None:
                    await self._set_state(conn, event, new_state)
                    changed = True
            if isinstance(event, JobProgress) and (new_state or JobState(current)) == announced:
                await conn.execute(
                    "UPDATE jobs SET progress = $2, updated_at = now() WHERE job_id = $1",
                    event.job_id,
                    json.dumps(
                        {
                            "stage": event.stage.value,
                            "percent": event.percent,
                            "message": event.message,
                        }
                    ),
                )
                changed = True
            return changed

    async def _set_state(self, conn: asyncpg.Connection, event: Event, state: JobState) -> None:
        error = None
        if isinstance(event, JobFailed):
            error = json.dumps(
                {
                    "code": event.code,
                    "message": event.message,
                    "stage": str(event.stage),
                    "retryable": event.retryable,
                }
            )
        post_id = event.post_id if isinstance(event, PostGenerated) else None
        await conn.execute(
            "UPDATE jobs SET state = $2, error = COALESCE($3::jsonb, error),"
            " post_id = COALESCE($4, post_id), updated_at = now() WHERE job_id = $1",
            event.job_id,
            state.value,
            error,
            post_id,
        )
        if isinstance(event, PostGenerated):
            await conn.execute(
                "UPDATE jobs SET progress = $2 WHERE job_id = $1",
                event.job_id,
                json.dumps({"stage": "generate", "percent": 100, "message": "done"}),
            )

    async def save_post(self, event: PostGenerated) -> None:
        await self.pool.execute(
            "INSERT INTO posts (post_id, job_id, title, language, event)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            event.post_id,
            event.job_id,
            event.title,
            event.language,
            event.model_dump_json(),
        )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
        if row is None:
            return None
        history = await self.pool.fetch(
            "SELECT state, at FROM job_history WHERE job_id = $1 ORDER BY at, state", job_id
        )
        job = dict(row)
        job["history"] = [dict(h) for h in history]
        return job

    async def post(self, post_id: str) -> PostGenerated | None:
        row = await self.pool.fetchval("SELECT event FROM posts WHERE post_id = $1", post_id)
        return None if row is None else PostGenerated.model_validate_json(row)
