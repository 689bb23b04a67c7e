"""Subscribers: project job events onto the jobs read model, keep finished posts, and pass each
change on to live clients and, when a job ends, to its webhook."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import Field

from seoblog_contracts import (
    JobCancelled,
    JobFailed,
    JobProgress,
    JobState,
    JobSubmitted,
    PostGenerated,
)
from seoblog_runtime import Parts

from .live import LiveHub
from .snapshots import JobCache
from .store import PgJobStore
from .webhooks import Webhooks

log = logging.getLogger("gateway.handlers")

JobEvent = Annotated[
    JobSubmitted | JobProgress | JobFailed | JobCancelled, Field(discriminator="type")
]
_ENDING = (JobFailed, JobCancelled, PostGenerated)


async def announce(
    jobs: JobCache, hub: LiveHub, webhooks: Webhooks, job_id: str, *, changed: bool
) -> None:
    """Tell live clients (and every replica's status cache) about a change; queue the webhook
    of a job that has ended (again on a redelivery: the delivery id makes that a no-op)."""
    found = await jobs.refresh(job_id)
    if found is None:
        return
    snapshot = found[0].model_dump(mode="json")
    if changed:
        await hub.publish(snapshot)
    await webhooks.enqueue(snapshot)


def register(parts: Parts[PgJobStore], jobs: JobCache, hub: LiveHub, webhooks: Webhooks) -> None:
    store, subjects = parts.store, parts.bus.subjects

    async def project_job(event: JobSubmitted | JobProgress | JobFailed | JobCancelled) -> None:
        changed = await store.apply(event)
        if changed or isinstance(event, _ENDING):
            await announce(jobs, hub, webhooks, event.job_id, changed=changed)

    async def project_post(event: PostGenerated) -> None:
        if await store.job_state(event.job_id) == JobState.CANCELLED:
            log.info("post of a cancelled job not kept")
            return
        await store.save_post(event)  # the post first, so a completed job always has it
        changed = await store.apply(event)
        await announce(jobs, hub, webhooks, event.job_id, changed=changed)

    # In stream order, so a job's history lists its states as they happened.
    parts.bus.consume(
        f"{subjects.root}.job.>", "gateway-project_job", JobEvent, project_job, concurrency=1
    )
    parts.bus.consume(
        subjects.of(PostGenerated), "gateway-project_post", PostGenerated, project_post
    )
