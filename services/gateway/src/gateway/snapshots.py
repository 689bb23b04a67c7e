"""A job as the API shows it, read from the store, and the status cache in front of it.

Every replica hears every change of every job (the live fan-out), so its cache is updated as
jobs move; a short TTL bounds how stale an entry can get if a fan-out message is lost."""

from __future__ import annotations

from typing import Any

from cachetools import TTLCache

from seoblog_contracts import PostGenerated

from .schemas import Job
from .store import PgJobStore

Found = tuple[Job, str | None]  # the job and its owner (the key that submitted it)


async def load_job(store: PgJobStore, job_id: str) -> Found | None:
    """The job and its owner from the store, or None."""
    row = await store.job(job_id)
    return None if row is None else found_of(row)


def found_of(row: dict[str, Any]) -> Found:
    """The job and its owner from a row of `store.job`."""
    event = row.get("post_event")
    post = PostGenerated.model_validate_json(event) if event else None
    return Job.from_row(row, post), row.get("owner")


class JobCache:
    def __init__(self, store: PgJobStore, ttl_s: float, size: int = 10_000) -> None:
        self.store = store
        self._items: TTLCache[str, Found] | None = (
            TTLCache(maxsize=size, ttl=ttl_s) if ttl_s > 0 else None
        )
        # The JSON of each cached job, made once: a status poll is then a dict lookup.
        self._bodies: TTLCache[str, tuple[Job, bytes]] = TTLCache(maxsize=size, ttl=max(ttl_s, 1))

    def body(self, job: Job) -> bytes:
        """The job as the API answers it (JSON), encoded once per version of the job."""
        hit = self._bodies.get(job.id)
        if hit is not None and hit[0] is job:
            return hit[1]
        encoded = job.model_dump_json().encode()
        self._bodies[job.id] = (job, encoded)
        return encoded

    async def get(self, job_id: str) -> Found | None:
        if self._items is not None and (hit := self._items.get(job_id)) is not None:
            return hit
        return await self.refresh(job_id)

    async def refresh(self, job_id: str) -> Found | None:
        """Read the job from the store and keep it."""
        found = await load_job(self.store, job_id)
        if found is not None and self._items is not None:
            self._items[job_id] = found
        return found

    def keep(self, rows: list[dict[str, Any]]) -> dict[str, Found]:
        """Jobs just read from the store (rows of `store.job`), cached; by id."""
        out = {}
        for row in rows:
            found = found_of(row)
            out[found[0].id] = found
            if self._items is not None:
                self._items[found[0].id] = found
        return out

    def put(self, job: Job, owner: str | None) -> None:
        if self._items is not None:
            self._items[job.id] = (job, owner)

    def update(self, snapshot: dict[str, Any]) -> None:
        """A newer snapshot from the live fan-out replaces a cached one (the owner stays)."""
        if self._items is None:
            return
        cached = self._items.get(snapshot.get("id", ""))
        if cached is not None and snapshot.get("version", 0) > cached[0].version:
            self._items[cached[0].id] = (Job.model_validate(snapshot), cached[1])
