"""Subscribers: project job events onto the jobs read model, and keep finished posts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from seoblog_contracts import JobCancelled, JobFailed, JobProgress, JobSubmitted, PostGenerated
from seoblog_runtime import Parts

from .store import PgJobStore

JobEvent = Annotated[
    JobSubmitted | JobProgress | JobFailed | JobCancelled, Field(discriminator="type")
]


def register(parts: Parts[PgJobStore]) -> None:
    store, subjects = parts.store, parts.bus.subjects

    async def project_job(event: JobSubmitted | JobProgress | JobFailed | JobCancelled) -> None:
        await store.apply(event)

    async def project_post(event: PostGenerated) -> None:
        await store.save_post(event)  # the post first, so a completed job always has it
        await store.apply(event)

    # In stream order, so a job's history lists its states as they happened.
    parts.bus.consume(
        f"{subjects.root}.job.>", "gateway-project_job", JobEvent, project_job, concurrency=1
    )
    parts.bus.consume(
        subjects.of(PostGenerated), "gateway-project_post", PostGenerated, project_post
    )
