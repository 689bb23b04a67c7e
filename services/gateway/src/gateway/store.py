"""All SQL of the gateway: jobs and their state history, the posts read model with full-text
search, API keys, idempotency keys, webhook deliveries and the gateway's own secrets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from seoblog_contracts import (
    Event,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSpec,
    JobState,
    PostGenerated,
    Usage,
    new_event_id,
    utcnow,
)
from seoblog_runtime import Store, migrations_of

from .projection import advance, state_of

DONE_PROGRESS = {"stage": "generate", "percent": 100, "message": "done"}

# A queued job and its first state ($1 job, $2 spec, $3 trace, $4 at, $5 owner, $6 callback,
# $7 event id, $8 request key, $9 seconds until the relay republishes its event, $10 the
# callback's events).
_INSERT_QUEUED = (
    "INSERT INTO jobs (job_id, spec, state, trace_id, created_at, updated_at, owner,"
    " callback_url, request_key, publish_due, callback_events)"
    " SELECT $1, $2, 'queued', $3, $4, $4, $5, $6, $8,"
    " $4::timestamptz + make_interval(secs => $9), $10::text[]"
)
_FIRST_STATE = (
    "INSERT INTO job_history (event_id, job_id, state, at) SELECT $7, job_id, 'queued', $4 FROM j"
)
_QUEUED = f"WITH j AS ({_INSERT_QUEUED} RETURNING job_id) {_FIRST_STATE}"
# The same, unless a job with the same request completed within $11 seconds: then nothing
# is written and that job's id comes back (for _CACHED_COPY). Kept apart from the copy, whose
# inserts cost PostgreSQL a third more on every submit even where they write nothing.
# Fixed fragments only; every value is a parameter.
_QUEUED_UNLESS_DONE = (
    "WITH hit AS (SELECT c.job_id FROM jobs c"  # noqa: S608
    " WHERE c.request_key = $8 AND c.state = 'completed' AND c.cached_from IS NULL"
    " AND c.updated_at >= now() - make_interval(secs => $11)"
    " ORDER BY c.updated_at DESC LIMIT 1),"
    f" j AS ({_INSERT_QUEUED} WHERE NOT EXISTS (SELECT 1 FROM hit) RETURNING job_id),"
    f" h AS ({_FIRST_STATE})"
    " SELECT job_id FROM hit"
)
# A job created completed with its own copy of job $10's post ($1 job, $2 spec, $3 trace,
# $4 at, $5 owner, $6 callback, $7 event id, $8 request key, $9 the callback's events, $11
# post id, $12 post event id, $13 its time, $14 its usage, $15 its progress); the source
# post's event comes back (nothing, and nothing written, if that job is gone).
_CACHED_COPY = (
    "WITH hit AS (SELECT c.job_id, p.event FROM jobs c JOIN posts p ON p.post_id = c.post_id"
    " WHERE c.job_id = $10),"
    " cj AS (INSERT INTO jobs (job_id, spec, state, trace_id, created_at, updated_at, owner,"
    " callback_url, request_key, post_id, cached_from, progress, version, callback_events)"
    " SELECT $1, $2, 'completed', $3, $4, $4, $5, $6, $8, $11, hit.job_id, $15, 2, $9::text[]"
    " FROM hit"
    " RETURNING job_id),"
    # Completed a microsecond after queued, so the history lists them in that order.
    " ch AS (INSERT INTO job_history (event_id, job_id, state, at)"
    " SELECT e, job_id, s, $4::timestamptz + make_interval(secs => d) FROM cj,"
    " unnest(ARRAY[$7, $12], ARRAY['queued', 'completed'], ARRAY[0, 0.000001]) AS x(e, s, d)),"
    " cp AS (INSERT INTO posts (post_id, job_id, title, language, event)"
    " SELECT $11, cj.job_id, hit.event->>'title', hit.event->>'language',"
    " hit.event || jsonb_build_object('job_id', $1::text, 'post_id', $11::text,"
    " 'event_id', $12::text, 'occurred_at', $13::text, 'usage', $14::jsonb) FROM hit, cj)"
    " SELECT event FROM hit"
)


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


@dataclass(frozen=True)
class CachedResult:
    """A result-cache hit: the job whose result is reused, and the new job's copy of its post."""

    source_job_id: str
    post: PostGenerated


_MOMENT: TypeAdapter[datetime] = TypeAdapter(datetime)


class PostCopy:
    """The ids of a post copied to another job, and the copy itself: no usage, since reusing
    a result costs nothing. The store writes the same fields into the stored copy."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.post_id = new_event_id()
        self.event_id = new_event_id()
        self.at = utcnow()
        self.occurred_at: str = _MOMENT.dump_python(self.at, mode="json")
        self.usage = Usage().model_dump_json()

    def of(self, event_json: str) -> PostGenerated:
        source = PostGenerated.model_validate_json(event_json)
        return source.model_copy(
            update={
                "event_id": self.event_id,
                "job_id": self.job_id,
                "post_id": self.post_id,
                "occurred_at": self.at,
                "usage": Usage(),
            }
        )


@dataclass(frozen=True)
class NewJob:
    job_id: str
    spec: JobSpec
    event_id: str
    at: datetime
    trace_id: str | None
    owner: str | None = None
    callback_url: str | None = None
    request_key: str | None = None
    publish_after_s: float = 10.0  # the relay republishes the event if not confirmed by then
    callback_events: Sequence[str] | None = None  # None: the default events


@dataclass
class Projected:
    """What projecting a batch did: jobs that changed, jobs that got an ending event, events
    of unknown jobs, posts of cancelled jobs not kept."""

    changed: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    unknown: list[Event] = field(default_factory=list)
    dropped_posts: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # read back (project's read_back)

    def add(self, plan: _Plan, written: set[str]) -> None:
        """What `plan` did to the jobs in `written` (those it wrote, and unknown ones)."""
        self.changed |= {i for i, j in plan.jobs.items() if j.changed and i in written}
        self.ended |= plan.ended & written
        self.unknown += [e for e in plan.unknown if e.job_id in written]
        self.dropped_posts += sum(n for i, n in plan.dropped.items() if i in written)


@dataclass
class _Change:
    """One job's row as a batch moves it."""

    state: JobState
    changed: bool = False
    error: str | None = None
    post_id: str | None = None
    progress: str | None = None

    def move(self, event: Event, state: JobState) -> None:
        self.state, self.changed = state, True
        if isinstance(event, JobFailed):
            self.error = json.dumps(
                {
                    "code": event.code,
                    "message": event.message,
                    "stage": str(event.stage),
                    "retryable": event.retryable,
                }
            )
        if isinstance(event, PostGenerated):
            self.post_id = event.post_id
            self.progress = json.dumps(DONE_PROGRESS)


@dataclass
class _Plan:
    """What a batch does to the jobs it names, planned on their states as read."""

    jobs: dict[str, _Change]
    history: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    posts: list[PostGenerated] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    unknown: list[Event] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # job: posts of it not kept

    @property
    def unknown_jobs(self) -> set[str]:
        return {e.job_id for e in self.unknown}

    def arguments(self, versions: dict[str, int]) -> list[Any]:
        """_PROJECT's parameters: the versions the plan was made on, then the writes."""
        changed = [(i, j) for i, j in self.jobs.items() if j.changed]
        return [
            list(versions),
            list(versions.values()),
            [i for i, _ in changed],
            [j.state.value for _, j in changed],
            [j.error for _, j in changed],
            [j.post_id for _, j in changed],
            [j.progress for _, j in changed],
            [h[0] for h in self.history],
            [h[1] for h in self.history],
            [h[2] for h in self.history],
            [h[3] for h in self.history],
            [p.post_id for p in self.posts],
            [p.job_id for p in self.posts],
            [p.title for p in self.posts],
            [p.language for p in self.posts],
            [p.model_dump_json() for p in self.posts],
        ]


def _plan(moving: Sequence[tuple[Event, JobState]], states: dict[str, JobState]) -> _Plan:
    """The batch applied in order to each job's state (`states`: the jobs that exist)."""
    plan = _Plan({i: _Change(state) for i, state in states.items()})
    for event, announced in moving:
        job = plan.jobs.get(event.job_id)
        if job is None:
            plan.unknown.append(event)
            continue
        if isinstance(event, JobFailed | JobCancelled | PostGenerated):
            plan.ended.add(event.job_id)
        if isinstance(event, PostGenerated):
            if job.state == JobState.CANCELLED:
                plan.dropped[event.job_id] = plan.dropped.get(event.job_id, 0) + 1
                continue
            plan.posts.append(event)  # kept with the job's state change, so a completed
            # job always has its post
        new_state = advance(job.state, announced)
        if new_state is not None:
            plan.history.append((event.event_id, event.job_id, new_state.value, event.occurred_at))
            job.move(event, new_state)
        if isinstance(event, JobProgress) and job.state == announced:
            job.progress = json.dumps(
                {"stage": event.stage.value, "percent": event.percent, "message": event.message}
            )
            job.changed = True
    return plan


# Optimistic rounds of `project` before the locking transaction takes over.
_OPTIMISTIC_ROUNDS = 3

# A planned batch in one statement (one round trip, atomic on its own): the jobs whose
# version is still the one planned on ($1, $2) are locked, and only theirs are written: the
# rows' changes ($3-$7), history ($8-$11) and posts ($12-$16). Returns the jobs written.
_PROJECT = (
    "WITH locked AS (SELECT j.job_id FROM jobs j"
    " JOIN unnest($1::text[], $2::bigint[]) AS r(job_id, version)"
    " ON r.job_id = j.job_id AND r.version = j.version ORDER BY j.job_id FOR UPDATE OF j),"
    " u AS (UPDATE jobs j SET state = c.state, error = COALESCE(c.error::jsonb, j.error),"
    " post_id = COALESCE(c.post_id, j.post_id),"
    " progress = COALESCE(c.progress::jsonb, j.progress),"
    " updated_at = now(), version = j.version + 1"
    " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])"
    " AS c(job_id, state, error, post_id, progress)"
    " WHERE j.job_id = c.job_id AND c.job_id IN (SELECT job_id FROM locked) RETURNING j.job_id),"
    " h AS (INSERT INTO job_history (event_id, job_id, state, at)"
    " SELECT x.event_id, x.job_id, x.state, x.at FROM unnest($8::text[], $9::text[],"
    " $10::text[], $11::timestamptz[]) AS x(event_id, job_id, state, at)"
    " WHERE x.job_id IN (SELECT job_id FROM locked) ON CONFLICT DO NOTHING),"
    " p AS (INSERT INTO posts (post_id, job_id, title, language, event)"
    " SELECT y.post_id, y.job_id, y.title, y.language, y.event::jsonb FROM unnest($12::text[],"
    " $13::text[], $14::text[], $15::text[], $16::text[])"
    " AS y(post_id, job_id, title, language, event)"
    " WHERE y.job_id IN (SELECT job_id FROM locked) ON CONFLICT DO NOTHING)"
    " SELECT job_id FROM locked"
)

# A job with its history (and post, when done), for `job` and `project`'s read back.
_JOB_SQL = (
    "SELECT j.*, (SELECT coalesce(json_agg(json_build_object('state', h.state, 'at', h.at)"
    " ORDER BY h.at, h.state), '[]') FROM job_history h WHERE h.job_id = j.job_id)"
    " AS history_json, p.event AS post_event FROM jobs j"
    " LEFT JOIN posts p ON p.post_id = j.post_id"
)


def _job_row(row: asyncpg.Record) -> dict[str, Any]:
    job = dict(row)
    job["history"] = json.loads(job.pop("history_json"))
    return job


@dataclass(frozen=True)
class JobFilter:
    owner: str | None = None  # None: every owner (admin, open mode)
    states: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    keyword: str | None = None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class PgJobStore(Store):
    def __init__(self, database_url: str, schema: str, pool_max: int = 10) -> None:
        super().__init__(database_url, schema, migrations_of(__file__), pool_max=pool_max)

    # -- jobs ----------------------------------------------------------------------------------

    async def create_job(self, job: NewJob, max_age_s: float = 0) -> CachedResult | None:
        """Create the job: queued, or, when the same request completed within `max_age_s`,
        completed at once with a copy of that post (returned)."""
        return await self._create(self.pool, job, max_age_s)

    async def create_job_once(
        self, job: NewJob, key: str, body_hash: str, max_age_s: float = 0
    ) -> tuple[str | None, CachedResult | None]:
        """Create the job under an idempotency key: (None, cached?) if created now; (the
        original job's id, None) if the key was used with the same body; IdempotencyConflict
        if with another."""
        owner = job.owner or ""
        for _ in range(3):
            existing = await self.pool.fetchrow(
                "SELECT body_hash, job_id FROM idempotency_keys WHERE owner = $1 AND key = $2",
                owner,
                key,
            )
            if existing is not None:
                if existing["body_hash"] != body_hash:
                    raise IdempotencyConflict
                return str(existing["job_id"]), None
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    cached = await self._create(conn, job, max_age_s)
                    await conn.execute(
                        "INSERT INTO idempotency_keys (owner, key, body_hash, job_id)"
                        " VALUES ($1, $2, $3, $4)",
                        owner,
                        key,
                        body_hash,
                        job.job_id,
                    )
                return None, cached
            except asyncpg.UniqueViolationError:
                continue  # a concurrent request with the same key won; read its job
        raise IdempotencyConflict  # pragma: no cover - only under pathological contention

    async def _create(
        self, conn: asyncpg.Connection | asyncpg.Pool, job: NewJob, max_age_s: float
    ) -> CachedResult | None:
        # One statement (one round trip), atomic on its own: look for a finished identical
        # request and, finding none, insert the queued job and its first state. Only a hit
        # takes a second one, to write the copy.
        spec = job.spec.model_dump_json()
        callback_events = None if job.callback_events is None else list(job.callback_events)
        args = [
            job.job_id,
            spec,
            job.trace_id,
            job.at,
            job.owner,
            job.callback_url,
            job.event_id,
            job.request_key,
            job.publish_after_s,
            callback_events,
        ]
        if max_age_s > 0 and job.request_key is not None:
            source = await conn.fetchval(_QUEUED_UNLESS_DONE, *args, max_age_s)
            if source is None:
                return None  # queued
            copy = PostCopy(job.job_id)
            event = await conn.fetchval(
                _CACHED_COPY,
                *args[:8],
                callback_events,
                source,
                copy.post_id,
                copy.event_id,
                copy.occurred_at,
                copy.usage,
                json.dumps(DONE_PROGRESS),
            )
            if event is not None:
                return CachedResult(str(source), copy.of(str(event)))
            # (Jobs are never deleted, but by hand: then the pipeline runs after all.)
        await conn.execute(_QUEUED, *args)
        return None

    async def cached_result(self, request_key: str, max_age_s: float) -> tuple[str, str] | None:
        """(job id, post event JSON) of the newest job that completed the same request
        within `max_age_s`, not itself a cached copy (so an answer never outlives its age)."""
        row = await self.pool.fetchrow(
            "SELECT j.job_id, p.event FROM jobs j JOIN posts p ON p.post_id = j.post_id"
            " WHERE j.request_key = $1 AND j.state = 'completed' AND j.cached_from IS NULL"
            " AND j.updated_at >= now() - make_interval(secs => $2)"
            " ORDER BY j.updated_at DESC LIMIT 1",
            request_key,
            max_age_s,
        )
        return None if row is None else (str(row["job_id"]), str(row["event"]))

    # -- the submit relay ----------------------------------------------------------------------

    async def mark_published(self, job_ids: list[str]) -> None:
        """These jobs' submitted events are in the stream: the relay can forget them."""
        await self.pool.execute(
            "UPDATE jobs SET publish_due = NULL WHERE job_id = ANY($1::text[])", job_ids
        )

    async def claim_unpublished(self, limit: int, lease_s: float) -> list[dict[str, Any]]:
        """Jobs still queued past their publish_due, leased to this replica for `lease_s`,
        with what it takes to publish the same event again (its id from the queued history
        row). Confirmed submits that left `queued` in time are not in the index at all."""
        rows = await self.pool.fetch(
            "UPDATE jobs j SET publish_due = now() + make_interval(secs => $2)"
            " FROM job_history h WHERE h.job_id = j.job_id AND h.state = 'queued'"
            " AND j.job_id IN (SELECT job_id FROM jobs WHERE publish_due <= now()"
            " AND state = 'queued' ORDER BY publish_due LIMIT $1 FOR UPDATE SKIP LOCKED)"
            " RETURNING j.job_id, j.spec, j.trace_id, h.event_id, h.at",
            limit,
            lease_s,
        )
        return [dict(r) for r in rows]

    # -- the projection ------------------------------------------------------------------------

    async def apply(self, event: Event) -> bool:
        """Project one event onto its job; True if anything changed. Idempotent."""
        return event.job_id in (await self.project([event])).changed

    async def project(self, events: Sequence[Event], *, read_back: bool = False) -> Projected:
        """Project a batch of events, in stream order, atomically per job. Idempotent.

        Per job, events apply in order to its state (forward-only, see projection.advance); a
        batch's progress reports collapse to the latest that matches the job's state, and each
        state change keeps its own history row. Events of jobs the gateway does not know change
        nothing and are returned as `unknown`.

        Two round trips and no transaction to open and commit: the jobs' states and versions
        are read, the batch is planned on them, and one statement writes it all where the
        versions still hold (locking those rows); jobs another writer moved meanwhile are
        planned again on their new state. After a few such losses the rest goes through the
        locking transaction (`_write_locked`), which always gets through. With `read_back`,
        the jobs it changed or ended come back whole (as `job` reads them) in `rows`, read on
        the same connection."""
        pending = [(e, s) for e in events if (s := state_of(e)) is not None]
        result = Projected()
        if not pending:
            return result
        async with self.pool.acquire() as conn:  # one connection for the batch
            for _ in range(_OPTIMISTIC_ROUNDS):
                if not pending:
                    break
                rows = await conn.fetch(
                    "SELECT job_id, state, version FROM jobs WHERE job_id = ANY($1::text[])",
                    sorted({e.job_id for e, _ in pending}),
                )
                versions = {r["job_id"]: r["version"] for r in rows}
                plan = _plan(pending, {r["job_id"]: JobState(r["state"]) for r in rows})
                written: set[str] = set()
                if versions:
                    try:
                        done = await conn.fetch(_PROJECT, *plan.arguments(versions))
                        written = {r["job_id"] for r in done}
                    except asyncpg.DeadlockDetectedError:
                        pass  # nothing written; planned again
                result.add(plan, written | plan.unknown_jobs)
                pending = [(e, s) for e, s in pending if e.job_id in versions.keys() - written]
            if pending:
                async with conn.transaction():
                    # In id order, so two transactions locking the same jobs cannot deadlock.
                    locked = await conn.fetch(
                        "SELECT job_id, state FROM jobs WHERE job_id = ANY($1::text[])"
                        " ORDER BY job_id FOR UPDATE",
                        sorted({e.job_id for e, _ in pending}),
                    )
                    plan = _plan(pending, {r["job_id"]: JobState(r["state"]) for r in locked})
                    await self._write_locked(conn, plan)
                result.add(plan, {e.job_id for e, _ in pending})
            if read_back and (moved := result.changed | result.ended):
                rows = await conn.fetch(_JOB_SQL + " WHERE j.job_id = ANY($1::text[])", list(moved))
                result.rows = [_job_row(r) for r in rows]
        return result

    @staticmethod
    async def _write_locked(conn: asyncpg.Connection, plan: _Plan) -> None:
        if plan.posts:
            await conn.executemany(
                "INSERT INTO posts (post_id, job_id, title, language, event)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [
                    (p.post_id, p.job_id, p.title, p.language, p.model_dump_json())
                    for p in plan.posts
                ],
            )
        if plan.history:
            await conn.executemany(
                "INSERT INTO job_history (event_id, job_id, state, at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                plan.history,
            )
        changed = [(i, j) for i, j in plan.jobs.items() if j.changed]
        if changed:
            await conn.executemany(
                "UPDATE jobs SET state = $2, error = COALESCE($3::jsonb, error),"
                " post_id = COALESCE($4, post_id), progress = COALESCE($5::jsonb, progress),"
                " updated_at = now(), version = version + 1 WHERE job_id = $1",
                [(i, j.state.value, j.error, j.post_id, j.progress) for i, j in changed],
            )

    async def job(self, job_id: str) -> dict[str, Any] | None:
        """The job with its history (and post, when done), in one round trip."""
        row = await self.pool.fetchrow(_JOB_SQL + " WHERE j.job_id = $1", job_id)
        return None if row is None else _job_row(row)

    async def jobs(
        self, where: JobFilter, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """A page of jobs, newest first, after the (created_at, job_id) cursor."""
        clauses, args = self._job_clauses(where)
        if after is not None:
            args += [after[0], after[1]]
            clauses.append(f"(created_at, job_id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        # Fixed fragments only; every value is a parameter.
        where_sql = " WHERE " + " AND ".join(clauses) if clauses else ""
        sql = f"SELECT * FROM jobs{where_sql} ORDER BY created_at DESC, job_id DESC"  # noqa: S608
        sql += f" LIMIT ${len(args)}"
        rows = [dict(r) for r in await self.pool.fetch(sql, *args)]
        if rows:
            history = await self.pool.fetch(
                "SELECT job_id, state, at FROM job_history WHERE job_id = ANY($1::text[])"
                " ORDER BY at, state",
                [r["job_id"] for r in rows],
            )
            by_job: dict[str, list[dict[str, Any]]] = {}
            for h in history:
                by_job.setdefault(h["job_id"], []).append({"state": h["state"], "at": h["at"]})
            for r in rows:
                r["history"] = by_job.get(r["job_id"], [])
        return rows

    @staticmethod
    def _job_clauses(where: JobFilter) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if where.owner is not None:
            args.append(where.owner)
            clauses.append(f"owner = ${len(args)}")
        if where.states:
            args.append(list(where.states))
            clauses.append(f"state = ANY(${len(args)}::text[])")
        if where.created_after is not None:
            args.append(where.created_after)
            clauses.append(f"created_at >= ${len(args)}")
        if where.created_before is not None:
            args.append(where.created_before)
            clauses.append(f"created_at < ${len(args)}")
        if where.keyword:
            args.append(_like(where.keyword))
            n = len(args)
            keywords = "jsonb_array_elements_text(spec->'keywords')"
            clauses.append(
                f"(spec->>'url' ILIKE ${n} OR EXISTS (SELECT 1 FROM {keywords} k"  # noqa: S608
                f" WHERE k ILIKE ${n}))"
            )
        return clauses, args

    # -- posts ---------------------------------------------------------------------------------

    async def post(self, post_id: str) -> PostGenerated | None:
        row = await self.pool.fetchval("SELECT event FROM posts WHERE post_id = $1", post_id)
        return None if row is None else PostGenerated.model_validate_json(row)

    async def post_owner(self, post_id: str) -> tuple[bool, str | None]:
        """(exists, owner of its job)."""
        row = await self.pool.fetchrow(
            "SELECT j.owner FROM posts p LEFT JOIN jobs j USING (job_id) WHERE p.post_id = $1",
            post_id,
        )
        return (row is not None, None if row is None else row["owner"])

    async def posts(
        self,
        *,
        owner: str | None,
        query: str | None,
        language: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        after: tuple[datetime, str] | None,
        offset: int,
        limit: int,
    ) -> list[tuple[PostGenerated, float | None, datetime]]:
        """Posts newest first (keyset `after`), or by relevance to `query` (`offset`)."""
        clauses: list[str] = []
        args: list[Any] = []
        if owner is not None:
            args.append(owner)
            clauses.append(f"j.owner = ${len(args)}")
        if language:
            args.append(language)
            clauses.append(f"p.language = ${len(args)}")
        if created_after is not None:
            args.append(created_after)
            clauses.append(f"p.created_at >= ${len(args)}")
        if created_before is not None:
            args.append(created_before)
            clauses.append(f"p.created_at < ${len(args)}")
        rank = "NULL::real"
        if query:
            args.append(query)
            q = f"websearch_to_tsquery('simple', ${len(args)})"
            clauses.append(f"p.search @@ {q}")
            rank = f"ts_rank(p.search, {q})"
            order = "rank DESC, p.created_at DESC, p.post_id DESC"
        else:
            order = "p.created_at DESC, p.post_id DESC"
            if after is not None:
                args += [after[0], after[1]]
                clauses.append(f"(p.created_at, p.post_id) < (${len(args) - 1}, ${len(args)})")
        args += [limit, offset if query else 0]
        # Fixed fragments only; every value is a parameter.
        where_sql = " WHERE " + " AND ".join(clauses) if clauses else ""
        select = f"SELECT p.event, p.created_at, {rank} AS rank"
        sql = f"{select} FROM posts p LEFT JOIN jobs j USING (job_id){where_sql}"
        sql += f" ORDER BY {order} LIMIT ${len(args) - 1} OFFSET ${len(args)}"
        rows = await self.pool.fetch(sql, *args)
        return [
            (
                PostGenerated.model_validate_json(r["event"]),
                None if r["rank"] is None else float(r["rank"]),
                r["created_at"],
            )
            for r in rows
        ]

    # -- API keys ------------------------------------------------------------------------------

    async def create_key(
        self,
        key_id: str,
        name: str,
        key_hash: str,
        hint: str,
        scopes: list[str],
        rate_per_s: float | None,
        burst: int | None,
    ) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "INSERT INTO api_keys (key_id, name, key_hash, key_hint, scopes, rate_per_s, burst)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            key_id,
            name,
            key_hash,
            hint,
            scopes,
            rate_per_s,
            burst,
        )
        return dict(row)

    async def put_bootstrap_key(self, key_hash: str, hint: str) -> None:
        """The admin key from settings: (re)stored under a fixed id, so a new one replaces it."""
        await self.pool.execute(
            "INSERT INTO api_keys (key_id, name, key_hash, key_hint, scopes)"
            " VALUES ('key_bootstrap', 'bootstrap admin (GATEWAY_ADMIN_KEY)', $1, $2,"
            " ARRAY['admin']) ON CONFLICT (key_id) DO UPDATE SET key_hash = EXCLUDED.key_hash,"
            " key_hint = EXCLUDED.key_hint, revoked_at = NULL",
            key_hash,
            hint,
        )

    async def key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )
        return None if row is None else dict(row)

    async def keys(self) -> list[dict[str, Any]]:
        return [
            dict(r) for r in await self.pool.fetch("SELECT * FROM api_keys ORDER BY created_at")
        ]

    async def revoke_key(self, key_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1"
            " RETURNING *",
            key_id,
        )
        return None if row is None else dict(row)

    # -- secrets -------------------------------------------------------------------------------

    async def secret(self, name: str, candidate: str) -> str:
        """The stored secret `name`; `candidate` becomes it if there is none yet (the first
        replica to start wins, so every replica signs with the same key)."""
        await self.pool.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            name,
            candidate,
        )
        value: str = await self.pool.fetchval("SELECT value FROM secrets WHERE name = $1", name)
        return value

    # -- webhooks ------------------------------------------------------------------------------

    async def enqueue_webhook(
        self, delivery_id: str, job_id: str, url: str, payload: dict[str, Any]
    ) -> bool:
        """Queue a delivery, due now, unless it exists; a new one drops the job's coalesced
        progress deliveries not yet attempted (it is newer news)."""
        inserted = await self.pool.fetchval(
            "WITH new AS (INSERT INTO webhook_deliveries (delivery_id, job_id, url, payload)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING delivery_id),"
            " stale AS (DELETE FROM webhook_deliveries WHERE job_id = $2 AND replaceable"
            " AND state = 'pending' AND attempts = 0 AND EXISTS (SELECT 1 FROM new))"
            " SELECT delivery_id FROM new",
            delivery_id,
            job_id,
            url,
            json.dumps(payload),
        )
        return inserted is not None

    async def coalesce_webhook(
        self, delivery_id: str, job_id: str, url: str, payload: dict[str, Any], due: datetime
    ) -> None:
        """Queue a replaceable delivery due at `due`, or give the pending one its newer
        payload (until its first attempt)."""
        await self.pool.execute(
            "INSERT INTO webhook_deliveries (delivery_id, job_id, url, payload, next_at,"
            " replaceable) VALUES ($1, $2, $3, $4, $5, true) ON CONFLICT (delivery_id) DO UPDATE"
            " SET payload = EXCLUDED.payload WHERE webhook_deliveries.state = 'pending'"
            " AND webhook_deliveries.attempts = 0",
            delivery_id,
            job_id,
            url,
            json.dumps(payload),
            due,
        )

    async def claim_webhooks(self, limit: int, lease_s: float) -> list[dict[str, Any]]:
        """Due deliveries, leased to this replica for `lease_s` (others skip them)."""
        rows = await self.pool.fetch(
            "UPDATE webhook_deliveries SET next_at = now() + make_interval(secs => $2)"
            " WHERE delivery_id IN (SELECT delivery_id FROM webhook_deliveries"
            " WHERE state = 'pending' AND next_at <= now() ORDER BY next_at"
            " LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING *",
            limit,
            lease_s,
        )
        return [dict(r) for r in rows]

    async def webhook_done(self, delivery_id: str) -> None:
        await self.pool.execute(
            "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,"
            " delivered_at = now(), last_error = NULL WHERE delivery_id = $1",
            delivery_id,
        )

    async def webhook_retry(self, delivery_id: str, delay_s: float | None, error: str) -> None:
        """Count a failed attempt: retry after `delay_s`, or give up when it is None."""
        await self.pool.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $3,"
            " state = CASE WHEN $2::float8 IS NULL THEN 'failed' ELSE 'pending' END,"
            " next_at = now() + make_interval(secs => COALESCE($2::float8, 0))"
            " WHERE delivery_id = $1",
            delivery_id,
            delay_s,
            error[:500],
        )

    async def webhooks_of(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT delivery_id, url, attempts, state, last_error, delivered_at, next_at"
            " FROM webhook_deliveries WHERE job_id = $1 ORDER BY delivery_id",
            job_id,
        )
        return [dict(r) for r in rows]
