"""Subscribers: project job events onto the jobs read model a batch at a time, keep finished
posts (their HTML sanitised again), and pass each change on to live clients and, when a job
ends, to its webhook."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from pydantic import Field

from seoblog_contracts import (
    Event,
    JobCancelled,
    JobFailed,
    JobProgress,
    JobSubmitted,
    PostGenerated,
)
from seoblog_runtime import Bus, Parts
from seoblog_runtime.html_policy import sanitize_page

from .live import LiveHub
from .schemas import Job
from .snapshots import Found, JobCache
from .store import PgJobStore
from .webhooks import Webhooks

log = logging.getLogger("gateway.handlers")

JobEvent = Annotated[
    JobSubmitted | JobProgress | JobFailed | JobCancelled, Field(discriminator="type")
]
BatchHandler = Callable[[list[Any]], Awaitable[None]]


class Counters:
    """What the projection skipped, for /metrics."""

    def __init__(self) -> None:
        self.unknown_job = 0
        self.cancelled_posts = 0


async def announce(
    jobs: JobCache, hub: LiveHub, webhooks: Webhooks, job_id: str, *, changed: bool
) -> None:
    """Tell live clients (and every replica's status cache) about a change; queue the webhook
    of a job that has ended (again on a redelivery: the delivery id makes that a no-op)."""
    found = await jobs.refresh(job_id)
    if found is not None:
        await announce_found(hub, webhooks, found, changed=changed)


async def announce_found(hub: LiveHub, webhooks: Webhooks, found: Found, *, changed: bool) -> None:
    """`announce` of a job just read (and cached)."""
    snapshot = found[0].model_dump(mode="json")
    if changed:
        await hub.publish(snapshot)
    await webhooks.enqueue(snapshot)


async def announce_job(
    jobs: JobCache, hub: LiveHub, webhooks: Webhooks, job: Job, owner: str | None
) -> None:
    """`announce` for a job the caller already holds whole (no read back)."""
    jobs.put(job, owner)
    snapshot = job.model_dump(mode="json")
    await hub.publish(snapshot)
    await webhooks.enqueue(snapshot)


def consume_batch(
    bus: Bus, subject: str, durable: str, event_type: Any, handler: BatchHandler
) -> None:
    """bus.consume_batch, or one event at a time in stream order where the bus lacks it."""
    batched = getattr(bus, "consume_batch", None)
    if batched is not None:
        batched(subject, durable, event_type, handler)
        return

    async def one(event: Event) -> None:
        await handler([event])

    bus.consume(subject, durable, event_type, one, concurrency=1)


def register(
    parts: Parts[PgJobStore], jobs: JobCache, hub: LiveHub, webhooks: Webhooks
) -> Counters:
    store, bus, subjects = parts.store, parts.bus, parts.bus.subjects
    counters = Counters()

    async def project(events: Sequence[Event]) -> None:
        # (A batch's queries make no spans: Bus.consume_batch suppresses them.)
        # The gateway wrote each submitted job's row itself: its own event moves nothing (and
        # reaches only a consumer declared before its filter left those events out).
        # The jobs the batch moved come back with it, read on the same connection.
        result = await store.project(
            [resanitised(e) for e in events if not isinstance(e, JobSubmitted)], read_back=True
        )
        if result.unknown:
            counters.unknown_job += len(result.unknown)
            await _dead_letter_unknown(bus, result.unknown)
        if result.dropped_posts:
            counters.cancelled_posts += result.dropped_posts
            log.info("post of a cancelled job not kept", extra={"count": result.dropped_posts})
        found = jobs.keep(result.rows)
        for job_id, job in sorted(found.items()):
            await announce_found(hub, webhooks, job, changed=job_id in result.changed)

    # In stream order, so a job's history lists its states as they happened. `job.*` is
    # job.progress, job.failed and job.cancelled: submitted jobs travel one token deeper
    # (job.submitted.<priority>), so a burst of submits is not delivered back to the gateway
    # that wrote them, to be pulled, checked, decoded and acked for nothing.
    consume_batch(bus, f"{subjects.root}.job.*", "gateway-project_job", JobEvent, project)
    consume_batch(bus, subjects.of(PostGenerated), "gateway-project_post", PostGenerated, project)
    return counters


def resanitised(event: Event) -> Event:
    """A post's HTML is sanitised again before it is stored and served: whatever reached the
    bus (a bug in the generator, a forged event) cannot plant a script. The same policy as
    the generator's (seoblog_runtime.html_policy), so a clean post comes out unchanged."""
    if isinstance(event, PostGenerated):
        return event.model_copy(update={"html": sanitize_page(event.html)})
    return event


async def _dead_letter_unknown(bus: Bus, events: list[Event]) -> None:
    """Events for jobs the gateway never created (an outsider's, or a lost submit's) change
    nothing; a copy goes to the DLQ with reason `unknown_job` for whoever looks."""
    for event in events:
        log.warning(
            "event for an unknown job dead-lettered",
            extra={"job_id": event.job_id, "event_type": type(event).__name__},
        )
        subject = bus.subjects.of(event)
        try:
            await bus.js.publish(
                bus.subjects.dlq(subject),
                event.model_dump_json().encode(),
                timeout=10,
                stream=bus.subjects.dlq_stream,
                headers={
                    "Nats-Msg-Id": f"dlq:gateway-project:{event.event_id}",
                    "Seoblog-Dlq-Reason": "unknown_job",
                    "Seoblog-Dlq-Consumer": "gateway-project",
                    "Seoblog-Dlq-Subject": subject,
                },
            )
        except Exception:  # counted and logged: the event changed nothing either way
            log.warning("unknown-job event not copied to the DLQ", exc_info=True)
